"""The accounts service: a double-entry ledger with TigerBeetle's semantics on SQL."""
