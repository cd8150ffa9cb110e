"""The webhooks domain (placeholder until the service lands)."""
