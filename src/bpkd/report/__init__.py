"""The results tables, regenerated from metrics files."""
