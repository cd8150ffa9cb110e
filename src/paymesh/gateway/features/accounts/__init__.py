"""Accounts: open, list and read accounts and their ledger entries."""
