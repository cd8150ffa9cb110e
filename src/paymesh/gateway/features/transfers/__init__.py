"""Money in, out and between accounts: top-ups, payouts and transfers."""
