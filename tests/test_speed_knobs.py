"""The speed knobs of ``profiles.<p>.train`` (docs/performance.md, "Mixed precision and speed"):
bf16's detection of native instructions and its fp32 fallback (both ways, by
overriding the file it reads), ``memory_format`` and ``compile`` reaching mmengine,
contiguous exported checkpoints, and the synthetic set's slide inference."""
import copy
import types

import pytest
import torch
import yaml

from bpkd.params import Params, ParamsError
from bpkd.training.amp import precision_on_this_host
from bpkd.training.cpu_features import cpu_flags, native_bf16
from bpkd.training.run import run_config
from conftest import REPO

TREE = yaml.safe_load((REPO / "params.yaml").read_text())
PAIR = "hrnet_w48_w18s"
# /proc/cpuinfo's layout: one block per logical CPU, a tab before the colon.
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile avx512_bf16\n\nprocessor\t: 1\n"
ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma\n"


def smoke(**train) -> Params:
    tree = copy.deepcopy(TREE)
    tree["profile"] = "smoke"
    tree["profiles"]["smoke"]["train"].update(train)
    return Params(tree)


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the detection at a hand-written cpuinfo; returns a writer."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cpuinfo"
    monkeypatch.setenv("BPKD_CPUINFO", str(path))

    def write(text: str):
        path.write_text(text)
        return path
    return write


def test_flags_are_read_from_the_first_flags_line(cpuinfo):
    cpuinfo(SAPPHIRE)
    assert cpu_flags() == {"fpu", "sse2", "avx2", "avx512f", "amx_bf16", "amx_tile", "avx512_bf16"}
    assert native_bf16() == ["avx512_bf16", "amx_bf16"]
    cpuinfo(ZEN3)
    assert native_bf16() == []


def test_a_missing_or_flagless_cpuinfo_means_no_native_bf16(tmp_path):
    assert native_bf16(tmp_path / "absent") == []
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert native_bf16(tmp_path / "arm") == []


def test_bf16_is_kept_on_a_cpu_with_native_bf16(cpuinfo, capsys):
    cpuinfo(SAPPHIRE)
    assert precision_on_this_host("bf16", False, "k") == ("bf16", None)
    cfg = run_config(smoke(amp="bf16"), "synthetic", PAIR, "baseline", work_dir="w", log_dir="l", dry_run=True,
                     cuda=False)
    assert cfg.optim_wrapper.type == "CPUBF16AmpOptimWrapper"
    assert "falls back" not in capsys.readouterr().out


def test_bf16_falls_back_to_fp32_without_native_bf16_and_says_so(cpuinfo, capsys):
    cpuinfo(ZEN3)
    amp, why = precision_on_this_host("bf16", False, "profiles.smoke.train.amp")
    assert amp == "fp32"
    assert why.startswith("profiles.smoke.train.amp = 'bf16' falls back to fp32: this CPU has none of the native "
                          "bfloat16 instructions ['avx512_bf16', 'amx_bf16']")
    cfg = run_config(smoke(amp="bf16"), "synthetic", PAIR, "baseline", work_dir="w", log_dir="l", dry_run=True,
                     cuda=False)
    assert cfg.optim_wrapper.to_dict() == dict(
        type="OptimWrapper", clip_grad=None, optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005))
    assert "profiles.smoke.train.amp = 'bf16' falls back to fp32" in capsys.readouterr().out
    # CUDA decides by itself (mmengine's AmpOptimWrapper), and fp32 never falls back.
    assert precision_on_this_host("bf16", True, "k") == ("bf16", None)
    assert precision_on_this_host("fp32", False, "k") == ("fp32", None)


def test_memory_format_and_compile_reach_mmengine(cpuinfo):
    cpuinfo(SAPPHIRE)
    plain = run_config(smoke(memory_format="contiguous", compile=False), "synthetic", PAIR, "baseline",
                       work_dir="w", log_dir="l", dry_run=True, cuda=False)
    assert [h["type"] for h in plain.custom_hooks] == ["FiniteLossHook", "RngStateHook"]
    assert "compile" not in plain
    fast = run_config(smoke(memory_format="channels_last", compile=True), "synthetic", PAIR, "baseline",
                      work_dir="w", log_dir="l", dry_run=True, cuda=False)
    assert [h["type"] for h in fast.custom_hooks] == ["FiniteLossHook", "RngStateHook", "ChannelsLastHook"]
    assert fast.compile is True  # mmengine's Runner then compiles model.train_step


@pytest.mark.parametrize("key,value,allowed", [
    ("memory_format", "nhwc", "one of ['contiguous', 'channels_last']"),
    ("compile", "yes", "true or false"),
])
def test_speed_knobs_are_validated_naming_the_key(key, value, allowed):
    tree = copy.deepcopy(TREE)
    tree["profiles"]["demo"]["train"][key] = value
    with pytest.raises(ParamsError) as err:
        Params(tree)
    assert str(err.value) == f"params.yaml: profiles.demo.train.{key} = {value!r} is invalid; expected {allowed}"


def test_channels_last_hook_converts_the_model_in_place():
    from bpkd.training.memory_format import ChannelsLastHook

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 4, 1))
    params = list(model.parameters())
    logged = []
    runner = types.SimpleNamespace(model=model, logger=types.SimpleNamespace(info=logged.append))
    ChannelsLastHook().before_run(runner)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[0].weight.is_contiguous()
    assert all(a is b for a, b in zip(params, model.parameters()))  # the optimiser's parameters still
    out = model(torch.randn(2, 3, 16, 16))  # an NCHW input comes out NHWC
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert logged == ["memory format: channels_last (ChannelsLastHook)"]


def test_exported_checkpoints_are_contiguous(tmp_path):
    from bpkd.weights import load_checkpoint, save_checkpoint

    w = torch.randn(8, 3, 3, 3).to(memory_format=torch.channels_last)
    save_checkpoint({"conv.weight": w}, tmp_path / "m.pth")
    loaded = load_checkpoint(tmp_path / "m.pth")["state_dict"]["conv.weight"]
    assert loaded.is_contiguous() and torch.equal(loaded, w)


def test_synthetic_models_are_tested_by_sliding_windows_of_the_crop(cpuinfo):
    cpuinfo(SAPPHIRE)
    cfg = run_config(smoke(), "synthetic", PAIR, "baseline", work_dir="w", log_dir="l", dry_run=True, cuda=False)
    # stride 2/3 of the 64x128 crop, rounded up, as mmseg's configs (480 -> 320).
    assert cfg.model.test_cfg.to_dict() == dict(mode="slide", crop_size=(64, 128), stride=(43, 86))
