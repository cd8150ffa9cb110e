"""The tenant's events, as webhooks deliver them."""
