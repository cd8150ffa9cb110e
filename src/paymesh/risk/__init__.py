"""The risk service: a decision per payment, before money moves."""
