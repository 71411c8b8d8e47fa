"""Shared entry-point plumbing for the thin scripts in ``stages/``."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

KNOWN_ERRORS: tuple[type[BaseException], ...] = ()


def parser(description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known user error prints one clear line and exits 2 (no traceback)."""
    from .datasets.prepare import RawDataMissing
    from .datasets.validate import DataError
    from .params import ParamsError
    from .report.readme_block import MarkersMissing
    from .training.errors import NonFiniteLoss
    from .weights import CheckpointError

    try:
        main()
    except (ParamsError, RawDataMissing, CheckpointError, DataError, NonFiniteLoss, MarkersMissing,
            FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
