"""Webhook endpoints, their secrets and their delivery log."""
