"""Tools for checking the pipeline itself (a scratch copy of the repository, the
kill-anywhere check); not used by any stage."""
