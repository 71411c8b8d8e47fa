"""The base of every error a user can act on (a param, a data file, a download, a
diverging loss): its message says what to fix, so stages print it as one line and
exit 2 without a traceback (:func:`bpkd.cli.run`).

Free of heavy imports, so that ``cli`` catches every such error without loading
torch, mmengine or cv2 for stages that do not need them (``report``)."""


class UserError(Exception):
    """An error the user fixes by changing a param, a file or the environment."""
