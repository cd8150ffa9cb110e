"""Settlement and reconciliation over REST (docs/settlement.md)."""
