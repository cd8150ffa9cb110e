"""Risk: the rules in force, block and allow lists, the review queue."""
