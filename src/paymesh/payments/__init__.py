"""The payments service: payments, captures, cancels, refunds and top-ups, as persisted sagas."""
