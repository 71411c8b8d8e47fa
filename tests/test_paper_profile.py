"""The `paper` profile resolves to the seed's protocol on each real dataset (80k
iterations, the dataset's crop, batch 8 in total, SGD + poly as mmseg's schedule_80k,
mmseg's pipelines and test mode, ImageNet backbones), without the data on disk and
without downloading anything (the dry run's path)."""
import copy
import os
import subprocess
import sys

import pytest
import yaml
from mmengine.config import Config

from bpkd.models.build import mmseg_config_dir
from bpkd.params import Params
from bpkd.training.run import distill_config, run_config
from conftest import REPO

TREE = yaml.safe_load((REPO / "params.yaml").read_text())

# One pair per dataset; together they cover ResNet, HRNet and MobileNetV2 backbones.
CASES = {
    "cityscapes": ("hrnet_w48_w18s", (512, 1024), "cityscapes.py", dict(mode="whole")),
    "ade20k": ("pspnet_r101_r18", (512, 512), "ade20k.py", dict(mode="whole")),
    "pascal_context59": ("deeplabv3p_r101_mv2", (480, 480), "pascal_context_59.py",
                         dict(mode="slide", crop_size=(480, 480), stride=(320, 320))),
}


def paper_params(nproc: int = 1) -> Params:
    tree = copy.deepcopy(TREE)
    tree.update(profile="paper", datasets=sorted(CASES), pairs=sorted({c[0] for c in CASES.values()}))
    tree["profiles"]["paper"]["train"]["nproc"] = nproc
    return Params(tree)


@pytest.fixture(autouse=True)
def no_data_no_network(tmp_path, monkeypatch):
    """An empty working dir (no prepared data) and a downloader that must not be called."""
    monkeypatch.chdir(tmp_path)

    def refuse(*a, **k):
        raise AssertionError("resolving a config must not download")

    monkeypatch.setattr("bpkd.weights.resolve.download", refuse)


def _mmseg_dataset(name: str) -> Config:
    return Config.fromfile(os.path.join(mmseg_config_dir(), "_base_", "datasets", name))


def _without_backend_args(pipeline) -> list:
    return [{k: v for k, v in t.items() if k != "backend_args"} for t in pipeline]


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_paper_profile_is_the_seeds_protocol(dataset):
    pair, crop, mmseg_file, test_cfg = CASES[dataset]
    params = paper_params()
    for role in ("teacher", "baseline"):
        cfg = run_config(params, dataset, pair, role, work_dir="w", log_dir="l", dry_run=True, cuda=False)
        assert cfg.train_cfg.max_iters == 80000 and cfg.train_cfg.val_interval == 8000
        assert cfg.train_dataloader.batch_size * params.train["student"].nproc == 8
        assert cfg.optim_wrapper.optimizer == dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005)
        # mmseg's schedule_80k
        assert cfg.param_scheduler == [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=80000,
                                            by_epoch=False)]
        assert tuple(cfg.model.data_preprocessor.size) == crop
        assert dict(cfg.model.test_cfg) == test_cfg
        # mmseg's own pipelines for this dataset, numbers included (crop, scale,
        # RandomResize 0.5–2.0, RandomCrop cat_max_ratio 0.75, flip, PhotoMetricDistortion)
        ref = _mmseg_dataset(mmseg_file)
        assert _without_backend_args(cfg.train_dataloader.dataset.pipeline) == \
            _without_backend_args(ref.train_pipeline)
        assert _without_backend_args(cfg.val_dataloader.dataset.pipeline) == \
            _without_backend_args(ref.test_pipeline)
        assert cfg.train_dataloader.dataset.type == ref.dataset_type
        # The ImageNet backbone of mmseg's config, loaded from the downloads folder
        # (resolved, not fetched).
        init = cfg.model.backbone.init_cfg
        assert init.type == "Pretrained" and init.checkpoint.startswith("data/weights/downloads/")
        assert cfg.model.pretrained is None


def test_dry_run_prints_the_config_without_data_or_download(tmp_path):
    """`stages/train.py --dry-run` and `stages/distill.py --dry-run` in a folder with
    params.yaml only (no data/, no weights/)."""
    tree = copy.deepcopy(TREE)
    tree.update(profile="paper", datasets=["ade20k"], pairs=["pspnet_r101_r18"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    common = ["--dataset", "ade20k", "--pair", "pspnet_r101_r18", "--dry-run"]
    for script, extra in (("train.py", ["--role", "baseline"]), ("train.py", ["--role", "teacher"]),
                          ("distill.py", ["--method", "bpkd"])):
        proc = subprocess.run([sys.executable, str(REPO / "stages" / script), *extra, *common], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout
        assert "# crop (h, w): (512, 512); batch: 8 per process x 1 process(es) = 8" in out
        assert "max_iters=80000" in out and "type='PolyLR'" in out
        if "teacher" in extra:
            assert "does not train on ade20k: it downloads https://" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written, nothing fetched


@pytest.mark.parametrize("cuda", [True, False])
def test_several_processes_split_the_batch_and_pick_the_norm(cuda):
    params = paper_params(nproc=4)
    cfg = run_config(params, "cityscapes", "hrnet_w48_w18s", "baseline", work_dir="w", log_dir="l",
                     dry_run=True, cuda=cuda)
    assert cfg.train_dataloader.batch_size == 2  # 8 in total over 4 processes
    assert cfg.launcher == "pytorch"
    assert cfg.env_cfg.dist_cfg.backend == ("nccl" if cuda else "gloo")
    assert ("type='SyncBN'" in cfg.pretty_text) == cuda and ("type='BN'" in cfg.pretty_text) == (not cuda)
    assert cfg.model_wrapper_cfg.type == "MMDistributedDataParallel"
    # DDP refuses device_ids for a CPU module; on GPUs mmengine fills in LOCAL_RANK.
    assert ("device_ids" in cfg.model_wrapper_cfg) == (not cuda)
    d = distill_config(params, "cityscapes", "hrnet_w48_w18s", "cwd", {}, "t.pth", work_dir="w", log_dir="l",
                       dry_run=True, cuda=cuda)
    # The distiller's own train_step runs under mmengine's wrapper for such models.
    assert d.model_wrapper_cfg.type == "MMSeparateDistributedDataParallel"
    assert d.train_dataloader.batch_size == 2
    assert ("type='SyncBN'" in d.pretty_text) == cuda


def test_one_process_uses_plain_bn_and_no_launcher():
    cfg = run_config(paper_params(nproc=1), "cityscapes", "hrnet_w48_w18s", "baseline", work_dir="w",
                     log_dir="l", dry_run=True, cuda=True)
    assert cfg.launcher == "none" and "SyncBN" not in cfg.pretty_text and "model_wrapper_cfg" not in cfg


def test_real_run_still_needs_the_prepared_dataset():
    with pytest.raises(FileNotFoundError, match="dataset.json: missing; run `dvc repro prepare` first"):
        run_config(paper_params(), "cityscapes", "hrnet_w48_w18s", "baseline", work_dir="w", log_dir="l")
