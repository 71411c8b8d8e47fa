"""Numerical faults (issue 6): a non-finite loss stops training with a message naming
the loss term and the iteration; nothing is exported and the bad iteration is
neither logged nor checkpointed."""
from types import SimpleNamespace

import pytest
import torch
import yaml
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from bpkd import cli
from bpkd.training.finite_loss_hook import FiniteLossHook, NonFiniteLoss
from conftest import REPO



def _runner(iteration: int, max_iters: int = 400):
    return SimpleNamespace(iter=iteration, max_iters=max_iters)


def test_finite_losses_pass_however_large():
    hook = FiniteLossHook()
    # A finite but huge term (float32's max), a non-scalar term, a non-number and no
    # outputs at all: none of them is a fault, so the hook returns and keeps no state.
    for outputs in ({"loss": torch.tensor(1.5), "decode.loss_ce": torch.tensor(1.5),
                     "decode.acc_seg": torch.tensor(40.0)},
                    {"loss": torch.tensor(3.4e38), "loss_bpkd_edge": torch.tensor(3.4e38)},
                    {"loss": torch.tensor([1.0, 2.0]), "note": "text"},
                    None, {}):
        assert hook.after_train_iter(_runner(3), 3, outputs=outputs) is None
    # The same hook still stops at the first non-finite one after them.
    with pytest.raises(NonFiniteLoss, match="'loss' is inf at iteration 4"):
        hook.after_train_iter(_runner(3), 3, outputs={"loss": torch.tensor(3.4e38) * 2})


@pytest.mark.parametrize("outputs, expected", [
    ({"loss": torch.tensor(float("nan")), "decode.loss_ce": torch.tensor(0.7),
      "loss_bpkd_edge": torch.tensor(float("nan"))},
     "loss term 'loss_bpkd_edge' is nan at iteration 12 of 400 (also loss = nan)"),
    ({"loss": torch.tensor(float("inf")), "decode.loss_ce": torch.tensor(float("inf")),
      "aux.loss_ce": torch.tensor(float("-inf"))},
     "loss term 'decode.loss_ce' is inf at iteration 12 of 400 (also loss = inf, aux.loss_ce = -inf)"),
    # Every term finite but their sum overflowed: the total is named.
    ({"loss": torch.tensor(float("inf")), "decode.loss_ce": torch.tensor(3e38)},
     "loss term 'loss' is inf at iteration 12 of 400;"),
    ({"loss": 1.0, "loss_d": float("nan")}, "loss term 'loss_d' is nan at iteration 12 of 400;"),
])
def test_non_finite_term_is_named_with_iteration(outputs, expected):
    with pytest.raises(NonFiniteLoss) as err:
        FiniteLossHook().after_train_iter(_runner(11), 11, outputs=outputs)
    assert str(err.value).startswith(f"training stopped: {expected}"), str(err.value)


def test_cli_reports_one_error_line(capsys):
    def fail():
        FiniteLossHook().after_train_iter(_runner(0, 3), 0, outputs={"loss": torch.tensor(float("nan")),
                                                                     "decode.loss_ce": torch.tensor(float("nan"))})

    with pytest.raises(SystemExit) as exit_:
        cli.run(fail)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: training stopped: loss term 'decode.loss_ce' is nan at iteration 1 of 3 "
                   "(also loss = nan); nothing was exported. Lower the learning rate or the loss weights, "
                   "or check the data."]


@HOOKS.register_module(name="TestInjectNaNHook", force=True)
class InjectNaNHook(Hook):
    """From iteration ``at`` (1-based, as logged) on, the decode head's logits are NaN."""

    priority = "LOWEST"

    def __init__(self, at: int) -> None:
        self.at = at
        self.handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.at and self.handle is None:
            head = runner.model.decode_head.conv_seg
            self.handle = head.register_forward_hook(lambda module, args, out: out * float("nan"))


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    """A real training config (``bpkd.training.run.run_config``) of the smoke
    profile's student on 4 generated 64x128 images, in a scratch working dir."""
    from bpkd.atomic import write_json
    from bpkd.datasets.synthetic import generate
    from bpkd.params import Params
    from bpkd.training.run import run_config

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data" / "prepared" / "synthetic"
    generate(data, 4, 1, 64, 128, seed=0)
    write_json(data / "dataset.json", dict(dataset="synthetic", image_hw=[64, 128]))
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["profile"] = "smoke"
    params = Params(tree)
    pair = params.pairs[0]
    cfg = run_config(params, "synthetic", pair, "baseline", work_dir=str(tmp_path / "work"),
                     log_dir=str(tmp_path / "metrics" / "train"))
    cfg.train_cfg.max_iters = 3
    cfg.train_cfg.val_interval = 100  # no validation: this is about training
    cfg.default_hooks.checkpoint.interval = 1  # a checkpoint after every good iteration
    cfg.default_hooks.logger.interval = 1
    return cfg, tmp_path


def test_nan_in_real_training_stops_and_exports_nothing(tiny_run):
    from bpkd.training.run import train_and_export

    cfg, tmp_path = tiny_run
    assert any(h["type"] == "FiniteLossHook" for h in cfg.custom_hooks)  # part of every training config
    cfg.custom_hooks.append(dict(type="TestInjectNaNHook", at=2))
    out = tmp_path / "data" / "models" / "baseline.pth"
    with pytest.raises(NonFiniteLoss) as err:
        train_and_export(cfg, out, meta={})
    assert str(err.value).startswith(
        "training stopped: loss term 'decode.loss_ce' is nan at iteration 2 of 3 (also loss = nan)"), str(err.value)
    assert not out.exists() and not out.parent.exists()
    # Iteration 1 was fine and checkpointed (a resume point); iteration 2 was not.
    checkpoints = sorted(p.name for p in (tmp_path / "work").rglob("*.pth"))
    assert checkpoints == ["iter_1.pth"], checkpoints
    # The NaN iteration never reached the DVCLive step log.
    logged = [p for p in (tmp_path / "metrics" / "train").rglob("*.tsv") if "loss" in p.name]
    assert logged, list((tmp_path / "metrics").rglob("*"))
    for path in logged:
        rows = path.read_text().lower().splitlines()[1:]
        assert len(rows) == 1 and "nan" not in rows[0] and "inf" not in rows[0], (path, rows)
