"""Pieces two or more algorithms use unchanged."""
