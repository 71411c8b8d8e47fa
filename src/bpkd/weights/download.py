"""Download one weight file: streamed, resumable, verified, then renamed into place.

    python -m bpkd.weights.download URL --out PATH [--sha256 HEX]

What was reused and what was written here, and why:

- ``torch.hub.download_url_to_file`` checks a hash prefix, but it always starts
  from byte 0 into a fresh ``<dst>.<uuid>.partial`` (an interrupted 300 MB
  teacher is downloaded again from scratch) and calls ``urlopen`` with no
  timeout (a stalled server hangs the stage forever). Resuming needs a stable
  partial file and a ``Range`` request, which it cannot do, so the streaming
  loop is written here on the standard library's ``urllib`` (redirects, proxies
  from the environment, TLS); ``requests`` would not remove any of that loop.
- ``dvc import-url`` tracks an external file but neither resumes nor checks a
  published hash, and it would turn each weight into a ``.dvc`` file outside the
  ``dvc.yaml`` stages; the stages call this function instead, and DVC tracks
  what they make from the download (e.g. ``teacher.pth``) as a stage output.
- ``tqdm`` draws the progress bar (it hides itself when stderr is not a
  terminal, so DVC logs stay clean); ``hashlib`` hashes.

Behaviour:

- The download goes to ``<dest>.part`` next to the destination, then
  ``os.replace`` moves it into place once verified (``bpkd.atomic`` uses a random
  temporary name, which could not be resumed). An interrupted transfer keeps the
  ``.part``; the next attempt asks for ``Range: bytes=<size>-`` and appends. A
  server that ignores ``Range`` (200 instead of 206) is answered by starting over.
  Dropped connections and stalls are retried ``retries`` times within one call.
- ``sha256`` is a full digest or a prefix of at least 8 hex digits (OpenMMLab
  names its files with the first 8). On a mismatch the ``.part`` is deleted and
  the error names the URL and both hashes.
- With no hash (the BPKD GitHub releases publish none) the file is downloaded
  and used, with a warning that it is unverified and its full SHA-256 so that it
  can be pinned in ``registry.yaml``. Refusing would make the released
  checkpoints unusable for nobody's benefit: a checkpoint cannot run code here,
  since every one is read with ``torch.load(weights_only=True)``; a wrong file
  fails loudly in the converter instead.
- A file already at the destination (placed by hand, or downloaded before) is
  verified and used without any network access; if it does not match, it is
  left alone and the error says so.
- Unreachable hosts give one line saying what to download and where to put it.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import CheckpointError

DEFAULT_TIMEOUT = 60.0  # seconds without a byte before a connection counts as stalled
USER_AGENT = "bpkd-pipeline (weights downloader)"
_CHUNK = 1 << 20


class DownloadError(CheckpointError):
    """A weight file could not be downloaded or did not verify."""


class NetworkUnavailable(DownloadError):
    """The host cannot be reached at all (no network, DNS failure, refused)."""

    reason = ""


class HashMismatch(DownloadError):
    """The bytes do not have the expected SHA-256."""


class _Interrupted(Exception):
    """A transfer stopped part-way; the ``.part`` file is kept for a resume."""


def normalise_sha256(sha256: str | None) -> str | None:
    """Lowercase ``sha256``; a prefix must have at least 8 hex digits."""
    if sha256 is None or sha256 == "":
        return None
    value = sha256.strip().lower()
    if not (8 <= len(value) <= 64) or any(c not in "0123456789abcdef" for c in value):
        raise DownloadError(f"expected SHA-256 {sha256!r} is not 8 to 64 hex digits")
    return value


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(url: str, dest: Path, expected: str | None) -> str:
    pin = f" (SHA-256 {'' if len(expected) == 64 else 'starting '}{expected})" if expected else ""
    return f"to do it by hand, download {url}{pin} and place it at {dest} (it will be verified and used)"


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: str | Path, sha256: str | None = None, *, mirrors=(), timeout: float = DEFAULT_TIMEOUT,
             retries: int = 3, progress: bool | None = None, verbose: bool = True) -> Path:
    """Fetch ``url`` (else each of ``mirrors`` in turn) to ``dest`` and return ``dest``.

    ``timeout`` is the longest wait for any byte (connect, headers or body).
    ``retries`` is how many more times an interrupted or stalled transfer is
    resumed within this call. ``progress``: True/False forces the bar on/off;
    None shows it on a terminal only. ``verbose``: False leaves out the line that
    says a file was verified (a dataset's thousand files). Raises a ``DownloadError`` (a
    ``CheckpointError``, so stages print it as one ``error:`` line).
    """
    dest = Path(dest)
    expected = normalise_sha256(sha256)
    if dest.exists():
        return _use_existing(dest, url, expected, verbose)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    with open(part, "ab") as lock:  # one writer per .part: a second process fails instead of interleaving
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(f"{part} is being written by another process; wait for it and rerun") from None
        try:
            source = _fetch_from_any([url, *mirrors], part, timeout, retries, progress)
        except DownloadError as e:
            if part.stat().st_size == 0:
                part.unlink()  # nothing worth resuming
            raise type(e)(f"{e}; {_by_hand(url, dest, expected)}") from None
        actual = sha256_of(part)
        if expected is not None and not actual.startswith(expected):
            part.unlink(missing_ok=True)
            raise HashMismatch(f"{source}: SHA-256 mismatch: expected {expected}, got {actual}; "
                               f"the download was deleted")
        os.replace(part, dest)
    _report(dest, source, expected, actual, verbose)
    return dest


def _use_existing(dest: Path, url: str, expected: str | None, verbose: bool = True) -> Path:
    actual = sha256_of(dest)
    if expected is not None and not actual.startswith(expected):
        raise HashMismatch(f"{dest} is already there but its SHA-256 is {actual}, not {expected} as expected "
                           f"for {url}; delete or replace it")
    _report(dest, "already present, not downloaded", expected, actual, verbose)
    return dest


def _report(dest: Path, source: str, expected: str | None, actual: str, verbose: bool = True) -> None:
    if expected is None:
        print(f"warning: {dest} is UNVERIFIED: no SHA-256 is known for it ({source}); its SHA-256 is {actual} "
              f"(pin it with --sha256 or in bpkd/weights/registry.yaml)", file=sys.stderr)
    elif verbose:
        print(f"{dest}: SHA-256 {actual[:16]}... verified ({source})", file=sys.stderr)


def _fetch_from_any(urls: list[str], part: Path, timeout: float, retries: int, progress) -> str:
    """Try each URL in turn; returns the one that delivered. The ``.part`` carries
    over between mirrors: they serve the same bytes, and the hash check guards it."""
    errors = []
    for i, url in enumerate(urls):
        try:
            _fetch_with_retries(url, part, timeout, retries, progress)
            return url
        except DownloadError as e:
            errors.append(e)
            if i + 1 < len(urls):
                print(f"warning: {e}; trying {urls[i + 1]}", file=sys.stderr)
    if all(isinstance(e, NetworkUnavailable) for e in errors):
        hosts = " nor ".join(dict.fromkeys(urllib.parse.urlsplit(u).netloc for u in urls))
        raise NetworkUnavailable(f"cannot reach {hosts} ({errors[0].reason})")
    raise DownloadError("; ".join(str(e) for e in errors))


def _fetch_with_retries(url: str, part: Path, timeout: float, retries: int, progress) -> None:
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, progress)
            return
        except _Interrupted as e:
            if attempt == retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{e}; {kept} bytes are kept in {part}, rerun to resume") from None
            print(f"warning: {e}; resuming ({attempt + 1}/{retries})", file=sys.stderr)


def _fetch(url: str, part: Path, timeout: float, progress) -> None:
    """One HTTP request, appending to ``part`` from its current size."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # our .part is not a prefix the server can extend: start over
            part.write_bytes(b"")
            raise _Interrupted(f"{url}: server refused to resume at byte {have} (HTTP 416)") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(reason, TimeoutError):  # connected (or not) but nothing came back
            raise _Interrupted(f"{url}: stalled, no answer within {timeout:g} s") from None
        if isinstance(reason, ConnectionResetError):  # includes http.client.RemoteDisconnected
            raise _Interrupted(f"{url}: connection lost before the answer ({reason})") from None
        error = NetworkUnavailable(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({reason})")
        error.reason = str(reason)
        raise error from None
    with response:
        if have and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                part.write_bytes(b"")
                raise _Interrupted(f"{url}: server resumed at byte {start}, not {have}")
            mode = "ab"
        else:  # 200: the whole file, whether or not a range was asked for
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        _stream(response, part, mode, have, total, url, timeout, progress)


def _range_start(content_range: str) -> int | None:
    # "bytes 500-999/1000"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _stream(response, part: Path, mode: str, have: int, total: int | None, url: str, timeout: float,
            progress) -> None:
    from tqdm import tqdm

    disable = None if progress is None else not progress
    with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                       desc=part.name.removesuffix(".part"), disable=disable, leave=False) as bar:
        done = have
        while True:
            try:
                block = response.read1(_CHUNK)  # what has arrived: a stall loses nothing already received
            except TimeoutError:
                raise _Interrupted(f"{url}: stalled, no data for {timeout:g} s after {done} bytes") from None
            except (http.client.IncompleteRead, ConnectionError) as e:
                raise _Interrupted(f"{url}: connection lost after {done} bytes ({type(e).__name__})") from None
            if not block:
                break
            out.write(block)
            done += len(block)
            bar.update(len(block))
    if total is not None and done < total:
        raise _Interrupted(f"{url}: connection closed after {done} of {total} bytes")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bpkd.weights.download",
        description="Download a weight file: resumable, verified against its SHA-256, renamed into place. "
                    "A file already at --out is verified and used without downloading.")
    ap.add_argument("url", help="http(s) URL of the file")
    ap.add_argument("--out", required=True, help="destination path")
    ap.add_argument("--sha256", help="expected SHA-256, full or a prefix of at least 8 hex digits; "
                                     "default: the hash registry.yaml lists for this URL, if any")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help="seconds without data before the server counts as stalled (default %(default)s)")
    ap.add_argument("--retries", type=int, default=3, help="resumes after an interruption (default %(default)s)")
    args = ap.parse_args(argv)
    from .registry import find_url

    entry = find_url(args.url)  # a URL the registry lists brings its hash and mirrors
    sha256 = args.sha256 if args.sha256 is not None else (entry.sha256 if entry else None)
    mirrors = tuple(u for u in entry.urls if u != args.url) if entry else ()
    download(args.url, args.out, sha256, mirrors=mirrors, timeout=args.timeout, retries=args.retries)
    print(args.out)


if __name__ == "__main__":
    from .. import cli

    cli.run(main)
