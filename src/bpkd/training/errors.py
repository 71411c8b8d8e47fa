"""Training errors a user can act on.

Kept apart from the hook that raises them so that they can be imported without
torch and mmengine."""

from ..errors import UserError


class NonFiniteLoss(UserError, FloatingPointError):
    """A loss term became NaN or infinite: training stopped, nothing was exported."""
