"""Fetch CamVid (SegNet's 11-class release) into ``data/raw/camvid``, for a user with a network::

    python -m bpkd.datasets.camvid_fetch                 # then: dvc repro prepare@camvid

Every file of the ``CamVid/`` folder of SegNet's tutorial repository, pinned to one
commit (:data:`COMMIT`), is downloaded by the weights downloader
(:func:`bpkd.weights.download.download`: streamed into ``<file>.part``, resumed with a
``Range`` request after an interruption, checked against its SHA-256 in the manifest
the project ships, ``camvid.sha256``, and only then renamed into place). A rerun skips
the files already there once they verify, so an interrupted fetch resumes where it
stopped; a file that does not match its hash is an error naming it, never used.
The data's terms and citation: ``data/raw/camvid/README.md``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import UserError
from .camvid import REPOSITORY

COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/CamVid/"
MANIFEST = Path(__file__).with_name("camvid.sha256")


class ManifestError(UserError, ValueError):
    """The manifest of files to fetch is unreadable."""


def manifest(path: str | Path = MANIFEST) -> dict[str, str]:
    """``{relative path: sha256}`` from a ``sha256sum``-style file."""
    entries = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or name.startswith("/") or ".." in Path(name).parts:
            raise ManifestError(f"{path}:{number}: {line!r}; expected '<64 hex digits>  <relative path>'")
        entries[name] = digest
    return entries


def fetch(out: str | Path, base_url: str = BASE_URL, manifest_path: str | Path = MANIFEST, jobs: int = 4,
          timeout: float | None = None) -> int:
    """Download every file of the manifest under ``out``; returns how many there are.
    Raises the downloader's error (naming the URL) for the first file that fails, after
    the others have been tried."""
    from ..weights.download import DEFAULT_TIMEOUT, download

    out, entries = Path(out), manifest(manifest_path)
    base_url = base_url if base_url.endswith("/") else base_url + "/"

    def one(item):
        name, digest = item
        try:
            download(base_url + name, out / name, digest, timeout=timeout or DEFAULT_TIMEOUT, progress=False,
                     verbose=False)
        except UserError as e:
            return e
        return None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = [e for e in pool.map(one, entries.items()) if e is not None]
    if errors:
        more = f" ({len(errors) - 1} more files failed too; rerun to resume)" if len(errors) > 1 else ""
        raise type(errors[0])(f"{errors[0]}{more}")
    return len(entries)


def main(argv=None) -> None:
    from .. import cli

    ap = cli.parser(__doc__)
    ap.add_argument("--out", default="data/raw/camvid", help="the raw folder prepare@camvid reads (default: %(default)s)")
    ap.add_argument("--base-url", default=BASE_URL, help="where the files are, the manifest's paths appended "
                                                         "(default: the pinned commit of the public repository)")
    ap.add_argument("--manifest", default=str(MANIFEST), help="SHA-256 of every file (default: the shipped one)")
    ap.add_argument("--jobs", type=int, default=4, help="downloads at once (default: %(default)s)")
    args = ap.parse_args(argv)

    def run():
        n = fetch(args.out, args.base_url, args.manifest, args.jobs)
        print(f"{args.out}: {n} files of CamVid verified against {args.manifest}; next: dvc repro prepare@camvid "
              f"(with camvid in params.yaml's datasets)")

    cli.run(run)


if __name__ == "__main__":
    main()
