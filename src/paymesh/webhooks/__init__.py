"""The webhooks service: merchants' endpoints and signed, retried delivery of events."""
