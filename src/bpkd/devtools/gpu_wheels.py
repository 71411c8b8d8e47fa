"""The wheels a GPU machine without a package index needs to run the pipeline's stages.

    python -m bpkd.devtools.gpu_wheels [--dest .whl] [--dry-run]

The lent GPU machines (docs/gpu.md) have Python 3.12 with CUDA PyTorch 2.11 and a
scientific stack (numpy, scipy, pandas, matplotlib, opencv-python-headless, ...), but
not mmengine, mmcv-lite, onedl-mmsegmentation, dvc or dvclive, and they reach no
package index. This script puts into ``--dest`` (``.whl/``, ignored by git) one wheel
per distribution the stages import that the machine lacks, at the version
``constraints.txt`` pins (read from this venv's installed metadata, which ``make venv``
installed from it):

- the closure of :data:`ROOTS` over the installed distributions' requirements, their
  markers evaluated for CPython 3.12 on x86-64 Linux, extras not followed;
- less :data:`DEVICE_HAS`, the distributions the device image already holds (torch
  among them: its CUDA build must not be replaced);
- a pure-Python distribution (its installed ``WHEEL`` says ``Root-Is-Purelib: true``)
  through ``pip wheel --no-deps``: a published ``py3-none-any`` wheel as it is, an
  sdist (mmcv-lite, onedl-mmsegmentation, addict, antlr4-python3-runtime) built here,
  the same wheel whatever Python 3 installs it;
- a compiled one through ``pip download --only-binary=:all: --python-version 3.12
  --platform manylinux...``: the CPython 3.12 manylinux wheel, which this Python 3.11
  host cannot import but the device can.

The device installs them with ``pip install --no-index --no-deps --target /tmp/site
.whl/*.whl`` and ``PYTHONPATH=/tmp/site`` (docs/gpu.md, "The one-call device check").
What travels to the device (the working tree and the carried wheels) must stay within
64 MiB: the script sums both and fails naming the overflow and the largest wheels.

dvc's whole closure goes along whether or not the device runs ``dvc repro``: every
training stage logs through DVCLive, whose ``Live()`` opens the DVC repository
(``dvclive.dvc.get_dvc_repo`` imports ``dvc.repo`` and ``scmrepo``, and catches no
ImportError), so a training stage needs dvc installed in any case.
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .scratch import REPO

TRANSFER_LIMIT = 64 * 2**20  # the device tool: working tree + carried paths, per call
# What the stages import that the device lacks; the rest of the closure follows.
# cityscapesscripts is left out: only prepare@cityscapes imports it (real data).
ROOTS = ("mmengine", "mmcv-lite", "onedl-mmsegmentation", "ftfy", "captum", "dvclive", "dvc",
         "vl-convert-python")
# The device image's Python packages (its table in the device tool's KINDS.md, read on
# 2026-11-17), canonical names. Carry one of these only for another version: none here.
DEVICE_HAS = frozenset(canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
# mmcv and mmengine ask for opencv-python; the device's opencv-python-headless is the
# same cv2 module (mmseg uses no GUI call), so the 60 MB wheel stays here.
SAME_MODULE_THERE = frozenset({"opencv-python"})
DEVICE_PYTHON = dict(python_version="3.12", python_full_version="3.12.3", sys_platform="linux",
                     platform_system="Linux", platform_machine="x86_64", implementation_name="cpython",
                     platform_python_implementation="CPython", os_name="posix", extra="")
MANYLINUX = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


class WheelsError(RuntimeError):
    pass


def closure(roots, env: dict = DEVICE_PYTHON) -> dict[str, metadata.Distribution]:
    """Every installed distribution ``roots`` need on ``env``'s Python, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    stack = list(roots)
    while stack:
        name = canonicalize_name(stack.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise WheelsError(f"{name}: not installed in this venv ({sys.prefix}); run `make venv` first") from None
        found[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                stack.append(req.name)
    return found


def needed() -> dict[str, str]:
    """``{name: version}`` of what the device lacks (see the module docstring)."""
    dists = closure(ROOTS)
    return {name: dist.version for name, dist in sorted(dists.items())
            if name not in DEVICE_HAS and name not in SAME_MODULE_THERE and not name.startswith("nvidia-")}


def is_pure(name: str) -> bool:
    """Whether the installed distribution is pure Python (its wheel's ``Root-Is-Purelib``)."""
    text = metadata.distribution(name).read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in text


def fetch(name: str, version: str, dest: Path) -> None:
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    if is_pure(name):
        cmd = [*pip, "wheel", "--no-deps", "--wheel-dir", str(dest), f"{name}=={version}"]
    else:
        cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", *(a for p in MANYLINUX for a in ("--platform", p)), "--dest", str(dest),
               f"{name}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise WheelsError(f"{name}=={version}: {' '.join(cmd[3:5])} failed:\n{proc.stderr[-2000:]}")


def tree_bytes(repo: Path = REPO) -> int:
    """What the device tool sends besides carried paths: git's tracked files and the
    untracked ones it does not ignore."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout.split("\0")
    return sum((repo / n).stat().st_size for n in set(filter(None, listing)) if (repo / n).is_file())


def check_fits(wheels: list[Path], tree: int, limit: int = TRANSFER_LIMIT) -> int:
    """The wheels' total; raises naming the overflow when they and the tree exceed ``limit``."""
    total = sum(w.stat().st_size for w in wheels)
    if total + tree > limit:
        largest = ", ".join(f"{w.name} {w.stat().st_size / 2**20:.1f} MiB"
                            for w in sorted(wheels, key=lambda w: -w.stat().st_size)[:5])
        raise WheelsError(f"the wheels ({total / 2**20:.1f} MiB) and the working tree ({tree / 2**20:.1f} MiB) come "
                          f"to {(total + tree) / 2**20:.1f} MiB, {(total + tree - limit) / 2**20:.1f} MiB over the "
                          f"device's {limit / 2**20:.0f} MiB transfer limit; largest: {largest}")
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bpkd.devtools.gpu_wheels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=".whl", help="folder for the wheels, emptied first (default: .whl, git-ignored)")
    ap.add_argument("--dry-run", action="store_true", help="list what would be fetched, fetch nothing")
    args = ap.parse_args(argv)
    try:
        wanted = needed()
        for name, version in wanted.items():
            print(f"{name}=={version} ({'pure' if is_pure(name) else 'compiled, cp312 manylinux'})")
        if args.dry_run:
            return 0
        dest = Path(args.dest)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name, version in wanted.items():
            fetch(name, version, dest)
        wheels = sorted(dest.glob("*.whl"))
        if len(wheels) != len(wanted):
            raise WheelsError(f"{dest}: {len(wheels)} wheels for {len(wanted)} distributions")
        tree = tree_bytes()
        total = check_fits(wheels, tree)
    except WheelsError as err:
        print(f"gpu_wheels: {err}", file=sys.stderr)
        return 1
    print(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB in {dest}/; with the working tree "
          f"({tree / 2**20:.1f} MiB): {(total + tree) / 2**20:.1f} of {TRANSFER_LIMIT / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
