"""SKDS and IFVD as their authors ran them (the ``official`` preset) next to the CIRKD
benchmark's settings: the new loss pieces by hand on tiny tensors (pixel-KD
normalisations, pair-wise pooling by fraction and the detached norm, WGAN-GP's critic
and gradient penalty), the presets and their validation, D's optimiser and schedule, and
one smoke-profile training of both methods with the official preset."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import yaml
from torch import nn

from bpkd.distill.losses import METHODS
from bpkd.distill.losses import ifvd as ifvd_mod
from bpkd.distill.losses import skds as skds_mod
from bpkd.distill.losses.base import Recorded
from bpkd.distill.losses.discriminator import (discriminator_term, gradient_penalty, optimizer_config,
                                               scheduler_config)
from bpkd.distill.losses.ifvd import IFVDLoss
from bpkd.distill.losses.kd import pixel_kd
from bpkd.distill.losses.skds import SKDSLoss, pairwise_similarity_loss
from bpkd.distill.method_config import active_params

from conftest import REPO, copy_repo, run

PAIR = "hrnet_w48_w18s"
TINY_D = {"d_base_channels": 4}


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


# Two pixels, K = 2, tau = 1. Pixel 0: S (1, 0), T (0, 1); pixel 1: S (0, 2), T (3, 0).
S1 = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2)
T1 = torch.tensor([[[[0.0, 3.0]], [[1.0, 0.0]]]])
PIXELS = [([1.0, 0.0], [0.0, 1.0]), ([0.0, 2.0], [3.0, 0.0])]  # (student, teacher) logits per pixel
CE = sum(-sum(pt * math.log(ps) for pt, ps in zip(_softmax(t), _softmax(s))) for s, t in PIXELS)
KL = sum(sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(_softmax(t), _softmax(s))) for s, t in PIXELS)


# ----------------------------------------------------------------------------- pixel KD
def test_pixel_kd_divergences_and_reductions_by_hand():
    # A batch of N = 2 copies of the 1x2 map: the sums over n, i double.
    s, t = S1.repeat(2, 1, 1, 1), T1.repeat(2, 1, 1, 1)
    # CE of a pixel = KL + H(p_T): pixel 0, p_T = softmax(0, 1) = (0.2689, 0.7311),
    # p_S = (0.7311, 0.2689): -(0.2689 ln 0.7311 + 0.7311 ln 0.2689) = 0.0842 + 0.9601 = 1.0443.
    assert pixel_kd(S1[..., :1], T1[..., :1], divergence="cross_entropy").item() == pytest.approx(1.0443, abs=1e-4)
    # ... and the code's CE and KL differ by the teacher's entropy, summed over the pixels.
    entropy = sum(-sum(p * math.log(p) for p in _softmax(t)) for _, t in PIXELS)
    ce_minus_kl = pixel_kd(s, t, divergence="cross_entropy", reduction="spatial") - pixel_kd(s, t, reduction="spatial")
    assert ce_minus_kl.item() == pytest.approx(2 * entropy / 2, rel=1e-5)
    # pixels: / (N h w) = 4; elements: / (N K h w) = 8; spatial: / (h w) = 2 (the sum over the batch).
    assert pixel_kd(s, t).item() == pytest.approx(2 * KL / 4, rel=1e-6)
    assert pixel_kd(s, t, reduction="elements").item() == pytest.approx(2 * KL / 8, rel=1e-6)
    assert pixel_kd(s, t, reduction="spatial").item() == pytest.approx(2 * KL / 2, rel=1e-6)
    assert pixel_kd(s, t, divergence="cross_entropy", reduction="spatial").item() == pytest.approx(
        2 * CE / 2, rel=1e-6)
    # The student's gradient is the same for KL and CE (they differ by the teacher's entropy).
    g = []
    for divergence in ("kl", "cross_entropy"):
        x = s.clone().requires_grad_(True)
        pixel_kd(x, t, divergence=divergence).backward()
        g.append(x.grad)
    assert torch.allclose(g[0], g[1], atol=1e-7)
    with pytest.raises(ValueError, match="reduction = 'sum'"):
        pixel_kd(s, t, reduction="sum")


# ----------------------------------------------------------------------------- pair-wise
def test_pairwise_fraction_pools_to_2x2_nodes_by_hand():
    # 4x4 map, fraction 0.5: kernel int(0.5*4) = 2 per side, so 2x2 = 4 nodes. The student's
    # quadrants are constant: TL (1, 0), TR (0, 1), BL (1, 0), BR (0, 1). Nodes a, b, a, b with
    # a _|_ b: A^S = [[1,0,1,0],[0,1,0,1],[1,0,1,0],[0,1,0,1]]. Teacher: (1, 0, 0) everywhere, A^T = 1.
    fs = torch.zeros(1, 2, 4, 4)
    fs[0, 0, :, :2] = 1.0
    fs[0, 1, :, 2:] = 1.0
    ft = torch.zeros(1, 3, 4, 4)
    ft[0, 0] = 1.0
    # (A^S - A^T)^2 is 1 at the 8 zeros of A^S, 0 elsewhere: mean over 16 entries = 0.5.
    assert pairwise_similarity_loss(fs, ft, pool="fraction", fraction=0.5).item() == pytest.approx(0.5, abs=1e-6)
    # The benchmark's 2x2-pixel patch gives the same 4 nodes on this 4x4 map, not on larger
    # ones: the official kernel is int(fraction * side) per side (at least 1), i.e. always
    # about 2x2 nodes (ceil_mode keeps a remainder as one more node).
    assert pairwise_similarity_loss(fs, ft, patch=2).item() == pytest.approx(0.5, abs=1e-6)
    assert skds_mod._pool_kernel((64, 128), "fraction", 2, 0.5) == (32, 64)
    assert skds_mod._pool_kernel((3, 5), "fraction", 2, 0.5) == (1, 2)
    assert skds_mod._pool_kernel((1, 1), "fraction", 2, 0.5) == (1, 1)
    assert skds_mod._pool_kernel((64, 128), "patch", 2, 0.5) == (2, 2)


@pytest.mark.parametrize("detach_norm,expected", [(True, [0.5, 0.0]), (False, [0.25, -0.25])])
def test_pairwise_detached_norm_changes_the_gradient_not_the_value(detach_norm, expected):
    # Student nodes f1 = (1, 0), f2 = (1, 1): A12 = 1/sqrt2. Teacher nodes orthogonal: A^T_12 = 0.
    # L = (0 + A12^2 + A12^2 + 0)/4 = A12^2/2 = 0.25, so dL/df2 = A12 * dA12/df2.
    # Norm detached: dA12/df2 = f1/(|f1||f2|) = (1, 0)/sqrt2           -> dL/df2 = (0.5, 0).
    # Norm live: dA12/df2 = f1/(|f1||f2|) - (f1.f2) f2/(|f1||f2|^3) = (1, -1)/(2 sqrt2) -> (0.25, -0.25).
    fs = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]], requires_grad=True)  # (1, 2, 1, 2)
    ft = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    loss = pairwise_similarity_loss(fs, ft, patch=1, detach_norm=detach_norm)
    assert loss.item() == pytest.approx(0.25, abs=1e-6)
    loss.backward()
    assert fs.grad[0, :, 0, 1].tolist() == pytest.approx(expected, abs=1e-6)


# ----------------------------------------------------------------------------- WGAN-GP
class LinearCritic(nn.Module):
    """D(x) = sum(w * x) per sample: its input gradient is w everywhere, |w| = 5."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[[3.0, 0.0]], [[0.0, 4.0]]]))  # (K=2, 1, 2)

    def forward(self, x):
        return (x * self.w).sum(dim=(1, 2, 3))


class QuadraticCritic(nn.Module):
    """D(x) = |x|^2 / 2 per sample: its input gradient is x itself."""

    def forward(self, x):
        return 0.5 * x.pow(2).sum(dim=(1, 2, 3))


def test_gradient_penalty_of_a_linear_critic_is_exact():
    # grad_x D = w at every x_hat, so GP = (|w| - 1)^2 = (5 - 1)^2 = 16 whatever eps.
    critic = LinearCritic()
    real, fake = torch.randn(3, 2, 1, 2), torch.randn(3, 2, 1, 2)
    gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(16.0)
    # The penalty trains D (create_graph): d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = 1.6 w = (4.8, 0, 0, 6.4).
    gp.backward()
    assert critic.w.grad.flatten().tolist() == pytest.approx([4.8, 0.0, 0.0, 6.4])


def test_gradient_penalty_interpolates_per_sample():
    # grad_x D = x_hat = eps*real + (1-eps)*fake. Sample 0: eps 0.25, real (2, 0), fake 0 -> x_hat
    # (0.5, 0), |.| = 0.5, (0.5-1)^2 = 0.25. Sample 1: eps 1, real (0, 3) -> x_hat = real, (3-1)^2 = 4.
    real = torch.tensor([[[[2.0, 0.0]]], [[[0.0, 3.0]]]])  # (2, 1, 1, 2)
    fake = torch.tensor([[[[0.0, 0.0]]], [[[0.0, 1.0]]]])
    gp = gradient_penalty(QuadraticCritic(), real, fake, eps=torch.tensor([0.25, 1.0]))
    assert gp.item() == pytest.approx((0.25 + 4.0) / 2)


def test_critic_losses_by_hand():
    critic = LinearCritic()
    real = torch.ones(1, 2, 1, 2)  # D = 3 + 4 = 7
    fake = torch.tensor([[[[0.0, 2.0]], [[1.0, 0.0]]]])  # D = 3*0 + 0*2 + 0*1 + 4*0 = 0
    # WGAN-GP: mean D(fake) - mean D(real) + 10 * (5 - 1)^2 = 0 - 7 + 160 = 153.
    assert discriminator_term(critic, fake, real, "wgan_gp", 10.0).item() == pytest.approx(153.0)
    assert discriminator_term(critic, fake, real, "wgan_gp", 0.0).item() == pytest.approx(-7.0)
    # Hinge: relu(1 - 7) + relu(1 + 0) = 1.
    assert discriminator_term(critic, fake, real, "hinge").item() == pytest.approx(1.0)
    # SKDS's official preset: d_weight 0.1 multiplies the critic and its penalty (as lambda_d does).
    loss = SKDSLoss(dict(skds_mod.OFFICIAL, **TINY_D), 2, 4, 4)
    loss.discriminator = critic
    assert loss.discriminator_loss(fake, real)["loss_skds_d"].item() == pytest.approx(15.3)


def test_wgan_gp_trains_the_real_discriminator():
    torch.manual_seed(0)
    loss = IFVDLoss(dict(ifvd_mod.OFFICIAL, **TINY_D), 3, 4, 4)
    fake, real = torch.randn(2, 3, 8, 16), torch.randn(2, 3, 8, 16) + 1.0
    params = [p for p in loss.discriminator.parameters() if p.requires_grad]
    assert params
    opt = torch.optim.SGD(params, lr=1e-2)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        torch.manual_seed(1)  # the same interpolation points (the penalty's eps) each step
        d_loss = loss.discriminator_loss(fake, real)["loss_ifvd_d"]
        d_loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
        losses.append(d_loss.item())
        opt.step()
    # The critic's own loss falls as it learns to tell the two feature maps apart: the
    # gradient reaches D's real parameters and points the right way.
    assert all(after < before for before, after in zip(losses, losses[1:])), losses


# ----------------------------------------------------------------------------- whole methods
def test_official_skds_and_ifvd_terms_by_hand():
    # SKDS official: pixel term 10 * CE summed over the batch / (h w); N = 2 copies -> 10 * 2 CE / 2.
    s, t = S1.repeat(2, 1, 1, 1), T1.repeat(2, 1, 1, 1)
    feats = torch.randn(2, 4, 1, 2)
    skds = SKDSLoss(dict(skds_mod.OFFICIAL, **TINY_D), 2, 4, 4)
    out = skds(Recorded(s, feats), Recorded(t, feats.clone()), torch.zeros(2, 1, 2, dtype=torch.long))
    assert out["loss_skds_kd"].item() == pytest.approx(10 * 2 * CE / 2, rel=1e-6)
    assert out["loss_skds_pair"].item() == pytest.approx(0.0, abs=1e-6)  # identical features
    # IFVD official: KD 10 * KL / (N K h w) = 10 * 2 KL / 8 (nn.KLDivLoss's mean).
    ifvd = IFVDLoss(dict(ifvd_mod.OFFICIAL, **TINY_D), 2, 4, 4)
    out = ifvd(Recorded(s, feats), Recorded(t, feats.clone()), torch.zeros(2, 1, 2, dtype=torch.long))
    assert out["loss_ifvd_kd"].item() == pytest.approx(10 * 2 * KL / 8, rel=1e-6)
    assert ifvd.ifv_weight == 200.0


# ----------------------------------------------------------------------------- presets and params
def _groups() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.mark.parametrize("method", ["skds", "ifvd"])
def test_params_yaml_blocks_are_the_code_presets(method):
    # params.yaml spells every knob of both settings; they must not drift from the code's.
    group = _groups()[method]
    assert group["preset"] == "benchmark"  # the benchmark stays the default
    cls = METHODS[method]
    for name, values in cls.PRESETS.items():
        # The block spells every key of the preset (none left to a default) with the code's value.
        spelled = {k: tuple(v) if isinstance(v, list) else v for k, v in group[name].items()}
        assert spelled == dict(values), name
        preset, knobs = active_params(method, dict(group, preset=name), method)
        assert preset == name and knobs == cls.parse(None, values, method)
    assert cls.PRESETS["benchmark"] is cls.DEFAULTS


@pytest.mark.parametrize("change,match", [
    ({"preset": "offical"}, r"skds\.preset = 'offical' is invalid; expected one of 'benchmark', 'official'"),
    ({"kd_weight": 1.0}, r"unknown key\(s\) skds\.kd_weight.*skds\.benchmark, skds\.official"),
    ({"official": {"kd_wieght": 1.0}}, r"skds\.official\.kd_wieght"),
    ({"official": {"adv_loss": "wgan"}}, r"skds\.official\.adv_loss = 'wgan' is invalid; expected one of 'hinge', 'wgan_gp'"),
    ({"benchmark": {"d_betas": [0.9]}}, r"skds\.benchmark\.d_betas = \[0\.9\] is invalid; expected two numbers"),
    ({"official": {"pair_fraction": 2.0}}, r"skds\.official\.pair_fraction = 2\.0"),
    ({"official": {"d_optimizer": "rmsprop"}}, r"skds\.official\.d_optimizer = 'rmsprop'"),
])
def test_bad_preset_or_knob_names_the_key(change, match):
    # The idle block is validated too: a typo there fails before any training.
    group = _groups()["skds"]
    group.update({k: dict(group[k], **v) if isinstance(v, dict) else v for k, v in change.items()})
    with pytest.raises(ValueError, match=match):
        active_params("skds", group, "skds")


def test_discriminator_optimiser_and_schedule():
    bench, official = skds_mod.DEFAULTS, skds_mod.OFFICIAL
    assert optimizer_config(bench) == dict(type="Adam", lr=4e-4, betas=(0.9, 0.99), weight_decay=0.0)
    assert scheduler_config(bench, 100) == []
    assert optimizer_config(official) == dict(type="SGD", lr=4e-4, momentum=0.9, weight_decay=5e-4)
    assert scheduler_config(official, 100) == [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=100,
                                                    by_epoch=False)]
    assert optimizer_config(ifvd_mod.OFFICIAL)["type"] == "Adam"
    assert scheduler_config(ifvd_mod.OFFICIAL, 100)[0]["type"] == "PolyLR"


# ----------------------------------------------------------------------------- smoke training
def _step_log(log_dir, name):
    rows = (log_dir / "plots/metrics" / f"{name}.tsv").read_text().splitlines()
    col = rows[0].split("\t").index(name)
    return [float(row.split("\t")[col]) for row in rows[1:]]


def test_official_preset_trains_skds_and_ifvd_on_the_smoke_profile(smoke_repo, tmp_path):
    # The stages themselves (method@, then distill@) in a fresh copy with the switch set, on
    # the smoke repo's prepared data and teacher: no second `dvc repro` of the pipeline.
    repo = copy_repo(tmp_path / "official")
    path = repo / "params.yaml"
    tree = yaml.safe_load(path.read_text())
    tree["skds"]["preset"] = tree["ifvd"]["preset"] = "official"  # = dvc exp run -S skds.preset=official ...
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    shutil.copytree(smoke_repo / "data/prepared/synthetic", repo / "data/prepared/synthetic")
    teacher = smoke_repo / f"data/models/synthetic/{PAIR}/teacher.pth"
    for method in ("skds", "ifvd"):
        run(["python", "stages/method.py", "--method", method, "--out", f"data/methods/{method}.json"], repo)
        resolved = json.loads((repo / f"data/methods/{method}.json").read_text())
        assert resolved["preset"] == "official"
        assert resolved["params"]["adv_loss"] == "wgan_gp" and resolved["params"]["d_schedule"] == "poly"
        out = repo / f"data/models/synthetic/{PAIR}/seed0/{method}.pth"
        log_dir = repo / f"metrics/synthetic/{PAIR}/train/seed0/{method}"
        proc = run(["python", "stages/distill.py", "--dataset", "synthetic", "--pair", PAIR, "--method", method,
                    "--seed", "0", "--method-params", f"data/methods/{method}.json", "--teacher", str(teacher),
                    "--out", str(out), "--log-dir", str(log_dir)], repo)
        assert out.is_file(), proc.stdout[-2000:]
        terms = [f"loss_{method}_d", f"loss_{method}_kd", f"loss_{method}_adv"]
        terms.append("loss_skds_pair" if method == "skds" else "loss_ifvd_ifv")
        for term in terms:
            values = _step_log(log_dir, term)
            assert len(values) == 3 and all(math.isfinite(v) for v in values), (term, values)
        # The run's config (logged by DVCLive) has the official discriminator optimiser and
        # its poly schedule, and the loss the official knobs.
        config = yaml.safe_load((log_dir / "params.yaml").read_text())
        d_opt = config["optim_wrapper"]["discriminator"]["optimizer"]
        assert d_opt["type"] == ("SGD" if method == "skds" else "Adam")
        assert config["param_scheduler"]["discriminator"][0]["type"] == "PolyLR"
        assert config["model"]["method_params"]["kd_weight"] == 10.0
        # D's learning rate follows the poly schedule over the 3 iterations. mmengine's PolyLR
        # reaches eta_min (0) at the last one: 4e-4 (1 - t/2)^0.9 for t = 0, 1, 2 ->
        # 4e-4, 4e-4 * 0.5^0.9 = 4e-4 * 0.5359 = 2.1435e-4, 0.
        assert _step_log(log_dir, "discriminator.lr") == pytest.approx([4e-4, 2.1435e-4, 0.0], rel=1e-4, abs=1e-12)
