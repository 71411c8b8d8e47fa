"""Errors, uncertainty and CAMs against distance to a boundary (the boundary@ stage)."""
