"""Mixed precision (``profiles.<p>.train.amp``, docs/performance.md, "Mixed precision and speed"): the
wrapper each mode resolves to, the CPU bf16 wrapper's autocast, the distiller's
teacher and student forwards under it, and a real bf16 smoke stage."""
import copy
import math
import shutil

import pytest
import torch
import yaml

from bpkd.models.build import build_model, model_config
from bpkd.params import Params, ParamsError
from bpkd.training.cpu_features import native_bf16
from bpkd.training.run import describe, distill_config, run_config
from bpkd.weights import load_into
from conftest import REPO, copy_repo, run

TREE = yaml.safe_load((REPO / "params.yaml").read_text())
PAIR = "hrnet_w48_w18s"
SGD = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005)


def smoke_params(amp: str, memory_format: str = "contiguous") -> Params:
    tree = copy.deepcopy(TREE)
    tree["profile"] = "smoke"
    tree["profiles"]["smoke"]["train"].update(amp=amp, memory_format=memory_format)
    return Params(tree)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no prepared data: the configs resolve as in a dry run
    # A CPU with native bf16, whatever this host is (the fallback: test_speed_knobs.py).
    (tmp_path / "cpuinfo").write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    monkeypatch.setenv("BPKD_CPUINFO", str(tmp_path / "cpuinfo"))
    return tmp_path


EXPECTED = {  # (amp, cuda): the student's optim wrapper besides its optimizer
    ("fp32", False): dict(type="OptimWrapper"),
    ("fp32", True): dict(type="OptimWrapper"),
    ("bf16", False): dict(type="CPUBF16AmpOptimWrapper"),
    ("bf16", True): dict(type="AmpOptimWrapper", dtype="bfloat16", loss_scale=dict(enabled=False)),
    ("fp16", True): dict(type="AmpOptimWrapper", dtype="float16", loss_scale="dynamic"),
}


@pytest.mark.parametrize("amp,cuda", sorted(EXPECTED))
def test_each_mode_resolves_to_its_mmengine_wrapper(in_tmp, amp, cuda):
    params = smoke_params(amp)
    cfg = run_config(params, "synthetic", PAIR, "baseline", work_dir="w", log_dir="l", dry_run=True, cuda=cuda)
    assert cfg.optim_wrapper.to_dict() == dict(EXPECTED[amp, cuda], optimizer=SGD, clip_grad=None)
    # A distiller without a discriminator trains with the same wrapper; with one (SKDS),
    # the student's wrapper is the run's and the discriminator's stays fp32.
    cwd = distill_config(params, "synthetic", PAIR, "cwd", {}, "t.pth", work_dir="w", log_dir="l",
                         dry_run=True, cuda=cuda)
    assert cwd.optim_wrapper.to_dict() == cfg.optim_wrapper.to_dict()
    skds_cfg = distill_config(params, "synthetic", PAIR, "skds", {}, "t.pth", work_dir="w", log_dir="l",
                              dry_run=True, cuda=cuda)
    skds = skds_cfg.optim_wrapper.to_dict()
    assert skds["student"] == dict(EXPECTED[amp, cuda], optimizer=SGD)
    assert skds["discriminator"]["type"] == "OptimWrapper"
    # The dry run's summary names the precision.
    shown = {("fp32", False): "# precision: fp32 (OptimWrapper)", ("fp32", True): "# precision: fp32 (OptimWrapper)",
             ("bf16", False): "# precision: bf16 autocast on CPU (CPUBF16AmpOptimWrapper), losses in fp32",
             ("bf16", True): "# precision: bfloat16 autocast (AmpOptimWrapper, loss_scale={'enabled': False}), "
                             "losses in fp32",
             ("fp16", True): "# precision: float16 autocast (AmpOptimWrapper, loss_scale=dynamic), losses in fp32"}
    assert shown[amp, cuda] in describe(cfg, 1).splitlines()
    assert shown[amp, cuda] in describe(skds_cfg, 1).splitlines()


def test_fp32_config_is_the_one_before_the_knob(in_tmp):
    # fp32 resolves to exactly the wrapper (and config text) of the code before `amp`
    # existed, so fp32 runs keep their resume fingerprints and weights.
    cfg = run_config(smoke_params("fp32"), "synthetic", PAIR, "baseline", work_dir="w", log_dir="l",
                     dry_run=True, cuda=False)
    assert "optim_wrapper = dict(\n    clip_grad=None,\n    optimizer=dict(lr=0.01, momentum=0.9, type='SGD', " \
           "weight_decay=0.0005),\n    type='OptimWrapper')" in cfg.pretty_text


def test_fp16_on_cpu_fails_naming_the_key(in_tmp):
    with pytest.raises(ParamsError) as err:
        run_config(smoke_params("fp16"), "synthetic", PAIR, "baseline", work_dir="w", log_dir="l", dry_run=True,
                   cuda=False)
    assert str(err.value).startswith("params.yaml: profiles.smoke.train.amp = 'fp16' needs a CUDA GPU")
    assert "set profiles.smoke.train.amp to 'bf16' or 'fp32'" in str(err.value)


@pytest.mark.parametrize("value,shown", [("fp8", "'fp8'"), (False, "False"), ("off", "'off'")])
def test_amp_value_is_validated_naming_the_key(value, shown):
    tree = copy.deepcopy(TREE)
    tree["profiles"]["demo"]["train"]["amp"] = value
    with pytest.raises(ParamsError) as err:
        Params(tree)
    assert f"params.yaml: profiles.demo.train.amp = {shown} is invalid; expected one of " \
           "['fp32', 'fp16', 'bf16']" in str(err.value)


def test_the_demo_and_smoke_train_in_bf16_channels_last_and_paper_as_the_paper():
    # The demo's default is the fastest setting that passed README's three checks; smoke
    # runs the same, so the reproducibility test covers it, and so does CamVid's CPU recipe
    # (the demo's but for its crops); paper keeps the paper's fp32.
    assert {p: (t["train"]["amp"], t["train"]["memory_format"], t["train"]["compile"])
            for p, t in TREE["profiles"].items()} == \
        {"smoke": ("bf16", "channels_last", False), "demo": ("bf16", "channels_last", False),
         "camvid": ("bf16", "channels_last", False), "paper": ("fp32", "contiguous", False)}


def test_cpu_bf16_wrapper_autocasts_its_context_only():
    from bpkd.training.amp import CPUBF16AmpOptimWrapper

    layer = torch.nn.Linear(4, 4)
    wrapper = CPUBF16AmpOptimWrapper(optimizer=torch.optim.SGD(layer.parameters(), lr=0.1))
    x = torch.randn(2, 4)
    with wrapper.optim_context(layer):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        y = layer(x)
    assert y.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")
    before = layer.weight.detach().clone()
    wrapper.update_params(y.float().pow(2).mean())  # plain backward and step: no loss scaler
    assert not torch.equal(layer.weight, before) and layer.weight.dtype == torch.float32
    assert "loss_scaler" not in wrapper.state_dict()


def test_distiller_runs_teacher_and_student_under_bf16_and_its_losses_in_fp32(in_tmp):
    """One train_step of the real SegDistiller (HRNet W48 -> W18-S, SKDS: student and
    discriminator wrappers) with the wrappers bf16 resolves to on CPU."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from bpkd.bench.distill import _batch
    from bpkd.distill.distiller import DistillerOptimWrapperConstructor

    DefaultScope.get_instance("test-amp-distiller", scope_name="mmseg")
    cfg = distill_config(smoke_params("bf16"), "synthetic", PAIR, "skds", {"d_base_channels": 4}, None,
                         work_dir="w", log_dir="l", dry_run=True, cuda=False)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    wrappers = DistillerOptimWrapperConstructor(cfg.optim_wrapper)(model)
    dtypes = {}

    def record(name):
        def hook(module, args, out):
            dtypes[name] = out.dtype  # returns None: the output is left as it is
        return hook

    model.teacher.decode_head.conv_seg.register_forward_hook(record("teacher"))
    model.student.decode_head.conv_seg.register_forward_hook(record("student"))
    terms = {}
    model.method.register_forward_hook(lambda module, args, out: terms.update(out))
    log = model.train_step(_batch(2, 64, 128), wrappers)
    assert dtypes == {"teacher": torch.bfloat16, "student": torch.bfloat16}
    assert set(terms) == {"loss_skds_kd", "loss_skds_pair", "loss_skds_adv"}
    assert all(t.dtype == torch.float32 for t in terms.values()), {k: t.dtype for k, t in terms.items()}
    assert all(math.isfinite(float(v)) for v in log.values()), log
    assert not torch.is_autocast_enabled("cpu")


def _first_row(log_dir, term: str) -> float:
    rows = (log_dir / f"plots/metrics/{term}.tsv").read_text().splitlines()
    return float(rows[1].split("\t")[-1])


@pytest.mark.skipif(not native_bf16(), reason="no native bf16 on this CPU: the smoke run fell back to fp32")
def test_the_bf16_channels_last_smoke_run_differs_slightly_from_fp32(smoke_repo, tmp_path):
    """The smoke profile trains in bf16 autocast and channels_last (the demo's default).
    `distill@…-skds-0` run again with `amp: fp32` and `memory_format: contiguous` on
    the smoke run's teacher, dataset and method params trains its 3 iterations with
    finite losses, and its first logged losses differ slightly from the smoke run's
    (same teacher, data, seed and initial weights), i.e. autocast really ran there."""
    repo = copy_repo(tmp_path / "repo")
    path = repo / "params.yaml"
    tree = yaml.safe_load(path.read_text())
    tree["profiles"]["smoke"]["train"].update(amp="fp32", memory_format="contiguous")
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    for inp in ("data/prepared/synthetic", f"data/models/synthetic/{PAIR}/teacher.pth", "data/methods/skds.json"):
        (repo / inp).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (smoke_repo / inp).is_dir() else shutil.copy2
        copy(smoke_repo / inp, repo / inp)
    stage = f"distill@synthetic-{PAIR}-skds-0"
    run(["dvc", "repro", "--single-item", stage], repo)
    log_dir = f"metrics/synthetic/{PAIR}/train/seed0/skds"
    fp32, bf16 = repo / log_dir, smoke_repo / log_dir
    config = (bf16 / "params.yaml").read_text()
    assert "CPUBF16AmpOptimWrapper" in config and "ChannelsLastHook" in config, config[:2000]
    assert "CPUBF16AmpOptimWrapper" not in (fp32 / "params.yaml").read_text()
    losses = [float(r.split("\t")[-1]) for r in (fp32 / "plots/metrics/loss.tsv").read_text().splitlines()[1:]]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), losses
    for term in ("decode.loss_ce", "loss_skds_kd"):
        mixed, full = _first_row(bf16, term), _first_row(fp32, term)
        # bf16 + channels_last moved the first decode CE by 3.0 % here (1.5560 -> 1.5092)
        assert mixed != full and abs(mixed - full) <= 0.05 * abs(full), (term, mixed, full)
    student = build_model(model_config("hrnet_w18s", 10, (64, 128)))
    assert load_into(student, repo / f"data/models/synthetic/{PAIR}/seed0/skds.pth")["iters"] == 3
