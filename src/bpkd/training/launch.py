"""Training on several processes: torchrun, mmengine's ``'pytorch'`` launcher.

``profiles.<p>.train.nproc`` is the *total* number of training processes (GPUs);
each takes ``batch_size / nproc`` images per iteration, so the total batch is the
param whatever the machine count.

- One machine: the DVC command stays ``python stages/train.py …``; with nproc > 1
  the script re-executes itself as ``python -m torch.distributed.run --standalone
  --nproc_per_node <nproc> stages/train.py <same args>`` (:func:`relaunch`).
- Several machines: the user starts ``torchrun --nnodes … --rdzv-endpoint …
  stages/train.py …`` on each; ``WORLD_SIZE`` is then set, nothing is relaunched,
  and the world size must equal nproc.

GPUs use NCCL and SyncBN (mmseg's configs); CPUs use gloo and plain BN, because
torch's SyncBatchNorm refuses CPU tensors.
"""
from __future__ import annotations

import os
import sys

from ..params import ParamsError


def launcher(nproc: int) -> str:
    """mmengine launcher of a run with ``nproc`` processes."""
    return "pytorch" if nproc > 1 else "none"


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def relaunch(nproc: int, key: str) -> None:
    """Re-execute this script under ``torch.distributed.run`` when it needs ``nproc``
    processes and is not yet one of them; returns only when no relaunch is needed.

    ``key`` is the params key of ``nproc``, named in errors.
    """
    world = os.environ.get("WORLD_SIZE")
    if world is not None:  # already started by torchrun (this relaunch, or the user's, multi-node)
        if int(world) != nproc:
            raise ParamsError(
                f"params.yaml: {key} = {nproc} but torchrun started {world} processes (WORLD_SIZE); "
                f"set {key} to the total number of processes (nnodes × nproc_per_node): "
                f"each process takes batch_size / {key} images")
        return
    if nproc == 1:
        return
    if cuda():
        import torch

        if torch.cuda.device_count() < nproc:
            raise ParamsError(f"params.yaml: {key} = {nproc} but this machine has {torch.cuda.device_count()} "
                              f"GPU(s); for several machines run torchrun --nnodes yourself (docs/distributed.md)")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           sys.argv[0], *sys.argv[1:]]
    print("relaunching on", nproc, "processes:", " ".join(cmd[1:]), flush=True)
    sys.stderr.flush()
    # exec, not a child: DVC's signals (Ctrl-C, kill) reach torchrun, which stops its workers.
    os.execv(sys.executable, cmd)


def init_cpu_process_group() -> None:
    """Join the torchrun process group with gloo on a CPU machine.

    mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``, which a CPU
    build of torch cannot do; the Runner skips its own initialisation when the
    group already exists, so on CPU we create it first (env:// from torchrun).
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
