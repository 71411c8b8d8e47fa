"""Training errors a user can act on.

Kept apart from the hook that raises them so that ``bpkd.cli`` can catch them
without importing torch and mmengine (every stage, even ``report``, goes through
``cli.run``)."""


class NonFiniteLoss(FloatingPointError):
    """A loss term became NaN or infinite: training stopped, nothing was exported."""
