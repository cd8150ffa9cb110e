"""What every paymesh service shares: settings, database, outbox and inbox,
event bus adapters, gRPC helpers, caller identity and logging."""
