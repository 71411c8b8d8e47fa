"""Shared entry-point plumbing for the thin scripts in ``stages/``."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

def parser(description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known user error prints one clear line and exits 2 (no traceback)."""
    from .errors import UserError

    try:
        main()
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
