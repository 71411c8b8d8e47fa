"""Training on several processes: the DVC stage relaunches itself under torchrun
(gloo, CPU), and 2 processes give the weights of 1 process with the same total batch."""
import subprocess
import sys
import textwrap
import time

import torch
import yaml

from bpkd.weights import load_checkpoint

from conftest import copy_repo, run, tool_env

PAIR = "hrnet_w48_w18s"
STAGE = f"baseline@synthetic-{PAIR}-0"
ITERS = 3

# Runs the smoke baseline's real config (bpkd.training.run.run_config, export through
# train_and_export) with two changes that make 1 and 2 processes comparable:
# - a pipeline without random transforms: each process draws augmentations from its
#   own seeded numpy RNG, so with 2 processes the second image of a batch would get
#   other crops/flips than in 1 process;
# - a constant LR, because the 1-process run takes 2 loader iterations per update.
# BN normalises each forward's own batch; torch has no SyncBN on CPU. So the 1-process
# run takes the total batch of 2 as 2 forwards of 1 image with gradient accumulation
# (mmengine's accumulative_counts, which averages them), which is exactly what 2 DDP
# processes with 1 image each compute; InfiniteSampler gives 1 process the order
# i0, i1, i2, … and rank r the items r, r+2, …, so each update sees the same 2 images.
# Both use one CPU thread per process (torchrun's default): the thread count changes
# the order of float reductions in the kernels, and batch-1 BN on 2×4-pixel maps
# amplifies that (measured with 2 threads in the 1-process run: 4e-6 after 1
# iteration, 7e-3 after 3).
DRIVER = textwrap.dedent('''
    import sys, yaml
    import torch
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS
    from bpkd.params import Params
    from bpkd.training.run import run_config, train_and_export

    nproc, out, init_out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    tree = yaml.safe_load(open("params.yaml"))
    tree["profiles"]["smoke"]["train"].update(nproc=nproc, batch_size=2, amp="fp32", memory_format="contiguous")
    cfg = run_config(Params(tree), "synthetic", "%(pair)s", "baseline", work_dir=f"data/work/ddp{nproc}",
                     log_dir=f"metrics/ddp{nproc}")
    cfg.train_dataloader.dataset.pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
                                             dict(type="PackSegInputs")]
    cfg.param_scheduler = []
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if nproc == 1:
        cfg.train_dataloader.batch_size = 1
        cfg.optim_wrapper.accumulative_counts = 2
        cfg.train_cfg.max_iters = 2 * %(iters)d
    else:
        assert cfg.train_dataloader.batch_size == 1 and cfg.launcher == "pytorch"
        cfg.train_cfg.max_iters = %(iters)d

    @HOOKS.register_module()
    class SaveInit(Hook):  # the initial weights, to show how far training moved them
        def before_train(self, runner):
            if runner.rank == 0:
                m = runner.model.module if hasattr(runner.model, "module") else runner.model
                torch.save({k: v.clone() for k, v in m.state_dict().items()}, init_out)

    cfg.custom_hooks.append(dict(type="SaveInit"))
    train_and_export(cfg, out, meta={})
''') % dict(pair=PAIR, iters=ITERS)


def _params(state: dict) -> dict:
    # BN running statistics are buffers that DDP leaves per process (rank 0's are
    # exported); the trained parameters are what gradient averaging must make equal.
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_stage_relaunches_under_torchrun_and_matches_one_process(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    path = repo / "params.yaml"
    tree = yaml.safe_load(path.read_text())
    # fp32 NCHW: the equivalence is exact to summation order only without bf16 rounding,
    # which differs between two half-batches and one whole batch (measured: 0.026).
    tree["profiles"]["smoke"]["train"].update(nproc=2, batch_size=2, amp="fp32", memory_format="contiguous")
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    run(["git", "commit", "-qam", "2 processes"], repo)

    # 1. The DVC stage as written in dvc.yaml (`python stages/train.py …`) relaunches itself.
    t0 = time.monotonic()
    proc = run(["dvc", "repro", STAGE], repo)
    print(f"dvc repro {STAGE} on 2 processes: {time.monotonic() - t0:.1f} s")
    log = proc.stdout + proc.stderr
    assert "relaunching on 2 processes" in log, log[-3000:]
    assert "torch.distributed.run --standalone --nproc_per_node=2 stages/train.py" in log
    assert load_checkpoint(repo / f"data/models/synthetic/{PAIR}/seed0/baseline.pth")["meta"]["iters"] == ITERS
    # Only rank 0 logs: one row per iteration (a second writer would duplicate steps).
    tsv = repo / f"metrics/synthetic/{PAIR}/train/seed0/baseline/plots/metrics/decode.loss_ce.tsv"
    header, *rows = tsv.read_text().splitlines()
    col = header.split("\t").index("step")
    assert [int(r.split("\t")[col]) for r in rows] == list(range(1, ITERS + 1))

    # 2. 2 processes (started by torchrun, as on several machines) vs 1 with the same total batch.
    (repo / "ddp_driver.py").write_text(DRIVER)
    t0 = time.monotonic()
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "ddp_driver.py",
         "2", "two.pth", "init2.pth"], repo)
    t1 = time.monotonic()
    subprocess.run([sys.executable, "ddp_driver.py", "1", "one.pth", "init1.pth"], cwd=repo, check=True,
                   env=dict(tool_env(), OMP_NUM_THREADS="1"), capture_output=True)
    print(f"2 processes: {t1 - t0:.1f} s; 1 process: {time.monotonic() - t1:.1f} s")
    two, one = (_params(load_checkpoint(repo / f)["state_dict"]) for f in ("two.pth", "one.pth"))
    init, init2 = (_params(torch.load(repo / f, weights_only=True)) for f in ("init1.pth", "init2.pth"))
    assert two.keys() == one.keys() == init.keys() == init2.keys()
    assert all(torch.equal(init[k], init2[k]) for k in init)  # both runs start from the same weights
    diff = max((two[k] - one[k]).abs().max().item() for k in one)
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    print(f"max |w(2 proc) - w(1 proc)| = {diff:.3g}; max |w - w_init| = {moved:.3g}")
    # Same images, same per-forward BN batch, one thread each: the only possible
    # difference is how the two gradients are summed (all-reduce of g_a + g_b, then /2,
    # vs g_a/2 + g_b/2; halving is exact in floating point), so the runs should agree to
    # the last bit (measured: 0.0). 1e-6 allows a rounding step of a differently
    # ordered sum, and is >10^4 below how far the 3 steps moved the weights (asserted);
    # without gradient averaging each rank would follow its own images and differ by
    # the order of that movement.
    assert moved > 1e-2
    assert diff <= 1e-6, diff
