"""Atomic outputs: write next to the target, then rename, so a killed stage leaves
either the previous complete output or none — never a half-written file."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces ``target``.

    The temporary lives in the same directory so the final ``os.replace`` is a
    rename on one filesystem (atomic on POSIX). On error the temporary is removed
    and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    _remove_stale(target)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    # mkdtemp/mkstemp make it private (0700/0600), and a writer that opens the existing
    # file keeps that mode: give the output the mode a plain mkdir/open would have.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod((0o777 if is_dir else 0o666) & ~umask)
    try:
        yield tmp
        if is_dir and target.exists():
            # A directory cannot be os.replace'd over a non-empty one: move the old
            # one aside first, then drop it once the new one is in place.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _remove_stale(target: Path) -> None:
    """Remove what a writer of ``target`` killed mid-write left behind (its temporary
    sibling, or the previous version moved aside): a stage killed by SIGKILL cannot
    clean up, and its next run, which writes the same target, is the one that can.
    DVC runs one stage per output at a time, so no live writer owns these."""
    for stale in [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | os.PathLike, data) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")
