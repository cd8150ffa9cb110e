"""Payments and their refunds."""
