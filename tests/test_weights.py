"""Weights: the downloader against a real HTTP server on 127.0.0.1, the converter on
a real mmseg student, and the registry's entries."""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from bpkd.weights import CheckpointError, load_into
from bpkd.weights import registry
from bpkd.weights.convert import convert_checkpoint
from bpkd.weights.download import DownloadError, HashMismatch, NetworkUnavailable, download

from conftest import REPO, tool_env

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless told not to, and
    can cut a response after N bytes once, or stall part-way."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start, asked = 0, self.headers.get("Range")
        if asked and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut_once.pop(self.path, None)
        if cut is not None:  # promise the whole body, send part of it, hang up
            self.wfile.write(body[:cut - start])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path in srv.stall_after:
            self.wfile.write(body[:srv.stall_after[self.path]])
            self.wfile.flush()
            srv.release.wait(10)
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.requests, self.cut_once, self.stall_after = {}, [], {}, {}
        self.ignore_range = False
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


@pytest.fixture
def server():
    srv = _Server()
    srv.files["/w.pth"] = PAYLOAD
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- downloader

@pytest.mark.parametrize("expected", [SHA, SHA[:8], SHA.upper()[:12]])
def test_clean_download_is_verified_and_renamed_into_place(server, tmp_path, expected, capsys):
    dest = tmp_path / "sub" / "w.pth"
    assert download(server.url("/w.pth"), dest, expected, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["w.pth"]
    assert server.requests == [("/w.pth", None)]
    assert "verified" in capsys.readouterr().err


def test_interrupted_download_resumes_at_the_cut_on_rerun(server, tmp_path):
    cut = 123_457
    server.cut_once["/w.pth"] = cut
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match="rerun to resume") as err:
        download(server.url("/w.pth"), dest, SHA, retries=0, progress=False)
    assert "by hand" in str(err.value) and "\n" not in str(err.value)
    part = tmp_path / "w.pth.part"
    assert part.stat().st_size == cut and not dest.exists()

    download(server.url("/w.pth"), dest, SHA, progress=False)
    assert server.requests == [("/w.pth", None), ("/w.pth", f"bytes={cut}-")]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_interrupted_download_resumes_within_one_call(server, tmp_path):
    server.cut_once["/w.pth"] = 1000
    download(server.url("/w.pth"), tmp_path / "w.pth", SHA, progress=False)
    assert server.requests == [("/w.pth", None), ("/w.pth", "bytes=1000-")]
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "w.pth.part").write_bytes(b"stale bytes from some earlier attempt")
    download(server.url("/w.pth"), tmp_path / "w.pth", SHA, progress=False)
    assert server.requests == [("/w.pth", "bytes=37-")]  # asked, got a 200, started over
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_wrong_hash_deletes_the_download_and_names_url_and_hashes(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(HashMismatch) as err:
        download(server.url("/w.pth"), tmp_path / "w.pth", wrong, progress=False)
    msg = str(err.value)
    assert server.url("/w.pth") in msg and wrong in msg and SHA in msg
    assert _leftovers(tmp_path) == []


def test_http_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download(server.url("/missing.pth"), tmp_path / "m.pth", progress=False)
    assert server.url("/missing.pth") in str(err.value)
    assert _leftovers(tmp_path) == []


def test_stalled_server_times_out_with_a_clear_error(server, tmp_path):
    server.stall_after["/w.pth"] = 5000
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"stalled, no data for 0\.5 s after 10000 bytes; 10000 bytes are kept"):
        download(server.url("/w.pth"), tmp_path / "w.pth", SHA, timeout=0.5, retries=1, progress=False)
    assert time.monotonic() - start < 5
    assert [r for _, r in server.requests] == [None, "bytes=5000-"]  # the retry resumed, then stalled again
    assert (tmp_path / "w.pth.part").stat().st_size == 10_000  # kept for the next run


def test_no_network_says_what_to_download_and_where(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/teacher.pth"
    dest = tmp_path / "weights" / "teacher.pth"
    with pytest.raises(NetworkUnavailable) as err:
        download(url, dest, "e1e1100f", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "cannot reach" in msg
    assert f"by hand, download {url} (SHA-256 starting e1e1100f) and place it at {dest}" in msg
    assert not (dest.parent / "teacher.pth.part").exists()


def test_mirror_is_tried_when_the_main_url_is_unreachable(server, tmp_path, capsys):
    dead = f"http://127.0.0.1:{_closed_port()}/w.pth"
    download(dead, tmp_path / "w.pth", SHA, mirrors=[server.url("/w.pth")], progress=False)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD
    assert "trying " + server.url("/w.pth") in capsys.readouterr().err


def test_file_placed_by_hand_is_verified_and_used_without_network(server, tmp_path):
    dest = tmp_path / "w.pth"
    dest.write_bytes(PAYLOAD)
    assert download(server.url("/w.pth"), dest, SHA[:8]) == dest
    assert server.requests == []
    dest.write_bytes(b"something else")
    with pytest.raises(HashMismatch, match="already there"):
        download(server.url("/w.pth"), dest, SHA[:8])
    assert dest.read_bytes() == b"something else" and server.requests == []  # the user's file is left alone


def test_unknown_hash_downloads_but_says_unverified(server, tmp_path, capsys):
    download(server.url("/w.pth"), tmp_path / "w.pth", None, progress=False)
    err = capsys.readouterr().err
    assert "UNVERIFIED" in err and SHA in err


def test_bad_expected_hash_is_refused_before_any_request(server, tmp_path):
    with pytest.raises(DownloadError, match="not 8 to 64 hex digits"):
        download(server.url("/w.pth"), tmp_path / "w.pth", "abc")
    assert server.requests == []


def test_command_line_end_to_end(server, tmp_path):
    out = tmp_path / "cli" / "w.pth"
    cmd = [sys.executable, "-m", "bpkd.weights.download", server.url("/w.pth"), "--out", str(out)]
    ok = subprocess.run(cmd + ["--sha256", SHA[:10]], cwd=REPO, env=tool_env(), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert out.read_bytes() == PAYLOAD and ok.stdout.strip() == str(out)
    bad = subprocess.run(cmd[:-1] + [str(tmp_path / "x.pth"), "--sha256", "f" * 8], cwd=REPO, env=tool_env(),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    assert "ffffffff" in bad.stderr and SHA in bad.stderr


# ---------------------------------------------------------------- converter

@pytest.fixture(scope="module")
def student_weights():
    """A real mmseg HRNetV2p-W18-Small student (cheapest of the paper's students)."""
    from bpkd.weights.convert import build_arch

    torch.manual_seed(0)
    model = build_arch("hrnet_w18s", num_classes=10)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _fresh_student():
    from bpkd.weights.convert import build_arch

    return build_arch("hrnet_w18s", num_classes=10)


def _mmrazor_style(weights: dict, student_prefix: str) -> dict:
    """What an mmseg 0.x / mmrazor distillation run saves: the student under a
    wrapper prefix, the teacher and distiller beside it, nested under meta/state_dict."""
    sd = {student_prefix + k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    sd.update({"distiller.teacher." + k: torch.zeros(1) for k in list(weights)[:20]})
    sd["distiller.connectors.0.weight"] = torch.ones(3, 3)
    return {"meta": {"mmseg_version": "0.26.0", "CLASSES": ("a", "b")}, "state_dict": {"state_dict": sd}}


@pytest.mark.parametrize("prefix", ["architecture.model.", "student.", "module.architecture."])
def test_prefixed_checkpoint_converts_and_loads_with_no_missing_keys(student_weights, tmp_path, prefix):
    src, dst = tmp_path / "released.pth", tmp_path / "converted.pth"
    torch.save(_mmrazor_style(student_weights, prefix), src)
    model = _fresh_student()
    conv = convert_checkpoint(src, model, dst)
    assert len(conv.dropped) == 21 and conv.unexpected == []
    assert conv.filled and all(k.endswith("num_batches_tracked") for k in conv.filled)
    load_into(model, dst)  # strict: raises on any missing or unexpected key
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, student_weights[k]), k


def test_checkpoint_missing_real_weights_fails_naming_file_and_keys(student_weights, tmp_path):
    ckpt = _mmrazor_style(student_weights, "architecture.model.")
    gone = "architecture.model.decode_head.conv_seg.weight"
    del ckpt["state_dict"]["state_dict"][gone]
    src = tmp_path / "broken.pth"
    torch.save(ckpt, src)
    with pytest.raises(CheckpointError, match="decode_head.conv_seg.weight") as err:
        convert_checkpoint(src, _fresh_student(), tmp_path / "out.pth")
    assert str(src) in str(err.value) and "missing" in str(err.value)
    assert not (tmp_path / "out.pth").exists()


def test_checkpoint_for_another_class_count_fails_on_shapes(student_weights, tmp_path):
    weights = dict(student_weights)
    weights["decode_head.conv_seg.weight"] = torch.zeros(19, *weights["decode_head.conv_seg.weight"].shape[1:])
    src = tmp_path / "c19.pth"
    torch.save({"state_dict": weights}, src)
    with pytest.raises(CheckpointError, match="wrong shape"):
        convert_checkpoint(src, _fresh_student())


def test_released_url_is_downloaded_converted_and_loadable(server, student_weights, tmp_path):
    from bpkd.weights.resolve import loadable_checkpoint

    buf = tmp_path / "buf.pth"
    torch.save(_mmrazor_style(student_weights, "architecture.model."), buf)
    server.files["/bpkd_student.pth"] = buf.read_bytes()
    out = loadable_checkpoint(server.url("/bpkd_student.pth"), "hrnet_w18s", 10, weights_dir=tmp_path / "w",
                              progress=False)
    assert out == tmp_path / "w" / "converted" / "hrnet_w18s" / "bpkd_student.pth"
    load_into(_fresh_student(), out)
    assert loadable_checkpoint("data/models/x.pth", "hrnet_w18s", 10) == Path("data/models/x.pth")


# ---------------------------------------------------------------- registry

def test_registry_has_a_teacher_for_every_dataset_and_pair():
    from bpkd.models.pairs import PAIRS

    reg = registry.load()
    for dataset in registry.DATASETS:
        for pair in PAIRS:
            entry = registry.teacher(dataset, pair)
            assert entry.url.startswith("https://")
    assert len(reg.teachers) == len(registry.DATASETS) * len(PAIRS)


def test_openmmlab_and_torchvision_hashes_match_their_file_names():
    for entry in registry.load().entries():
        name_hash = re.search(r"-([0-9a-f]{8,})\.pth$", entry.filename)
        if "openmmlab.com" in entry.url or entry.url.startswith("https://download.pytorch.org/models/"):
            assert name_hash and entry.sha256 == name_hash.group(1), entry.key
            for mirror in entry.mirrors:
                assert mirror.rsplit("/", 1)[-1] == entry.filename, entry.key
        else:  # the BPKD GitHub releases publish no hash
            assert entry.url.startswith("https://github.com/AkideLiu/BPKD/releases/") and entry.sha256 is None


def test_every_released_student_and_teacher_link_of_the_seed_readme_is_listed():
    readme = REPO / "tests" / "data" / "bpkd_readme_results.md"  # the paper README's results section
    links = set(re.findall(r"\[Model\]\((https://[^)]+)\)", readme.read_text()))
    listed = {e.url for e in registry.load().entries()} | {e.readme_url for e in registry.load().entries()}
    assert links - listed == set()
    assert len(registry.load().released) == 70  # 72 rows, two without a link


def test_every_released_student_is_evaluable():
    # 70 files: 23 Cityscapes (HRNet has no CIRKD link), 24 ADE20K, 23 Pascal Context 59
    # (HRNet has no baseline link). Each is built as the pair's student, except the
    # Cityscapes PSPNet baseline, mmseg's PSPNet-R18b.
    from bpkd.models.build import model_config
    from bpkd.models.pairs import ARCHS, arch_of

    archs = {key: registry.released_arch(*key) for key in registry.load().released}
    assert len(archs) == 70 and set(archs.values()) <= set(ARCHS)
    other = {key: a for key, a in archs.items() if a != arch_of(key[1], "student")}
    assert other == {("cityscapes", "pspnet_r101_r18", "baseline"): "pspnet_r18b"}
    counts = {a: list(archs.values()).count(a) for a in sorted(set(archs.values()))}
    assert counts == {"deeplabv3p_mv2": 18, "hrnet_w18s": 16, "isanet_r18": 18, "pspnet_r18": 17, "pspnet_r18b": 1}
    r18b = model_config("pspnet_r18b", 19, (64, 64), pretrained=True)
    # mmseg's pspnet_r18b-d8 config: torchvision's ResNet (7x7 stem), not ResNetV1c; r18 heads.
    assert (r18b.pretrained, r18b.backbone.type, r18b.backbone.depth) == ("torchvision://resnet18", "ResNet", 18)
    assert (r18b.decode_head.in_channels, r18b.decode_head.channels) == (512, 128)
    assert (r18b.auxiliary_head.in_channels, r18b.auxiliary_head.channels) == (256, 64)


def test_lookups_and_their_errors():
    assert registry.released("ade20k", "hrnet_w48_w18s", "bpkd").filename == "bpkd_80k_hrnet_r18_ade20k_student.pth"
    with pytest.raises(registry.RegistryError, match="no 'cirkd' checkpoint for cityscapes/hrnet_w48_w18s"):
        registry.released("cityscapes", "hrnet_w48_w18s", "cirkd")
    assert registry.backbone("pspnet_r18").sha256 == "b5776b93"
    mv2 = registry.backbone("deeplabv3p_mv2")
    assert mv2.prefix == "backbone." and mv2.sha256 == "3b2dc3af"
    entry = registry.teacher("cityscapes", "pspnet_r101_r18")
    assert registry.find_url(entry.mirrors[0]) is entry
    assert registry.released_arch("cityscapes", "pspnet_r101_r18", "baseline") == "pspnet_r18b"
    assert registry.released_arch("cityscapes", "pspnet_r101_r18", "bpkd") == "pspnet_r18"


def test_torchvision_resnet18_is_listed_by_url_and_name_hash_and_fits_the_r18b_backbone():
    # mmengine resolves 'torchvision://resnet18' by importing torchvision (not installed
    # here); the registry lists torchvision's URL, verified like torch.hub's check_hash:
    # the first 8 hex digits of the SHA-256, which the file name carries.
    from bpkd.weights.convert import build_arch

    tv = registry.backbone("pspnet_r18b")
    assert tv.url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert tv.sha256 == "f37072fd" and tv.prefix is None
    # torchvision's resnet18 keys, written out from its architecture: a 7x7 conv1/bn1
    # stem, two BasicBlocks per layer, a downsample in the first block of layers 2-4,
    # and the classifier fc. Without fc they are exactly mmseg's ResNet-18 backbone keys,
    # so the file loads with no prefix (mmengine's Pretrained init ignores fc).
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", *(f"bn1.{b}" for b in bn), "fc.weight", "fc.bias"}
    for layer in range(1, 5):
        for block in range(2):
            at = f"layer{layer}.{block}."
            keys |= {at + "conv1.weight", at + "conv2.weight", *(f"{at}bn{i}.{b}" for i in (1, 2) for b in bn)}
            if layer > 1 and block == 0:
                keys |= {at + "downsample.0.weight", *(f"{at}downsample.1.{b}" for b in bn)}
    backbone = {k.removeprefix("backbone.") for k in build_arch("pspnet_r18b", 19).state_dict()
                if k.startswith("backbone.")}
    assert backbone == keys - {"fc.weight", "fc.bias"}


def test_every_architecture_has_its_pretrained_backbone_listed():
    from bpkd.models.pairs import ARCHS

    # Each architecture's ImageNet backbone, as its mmseg config's `pretrained` names it,
    # with the hash that the file's published name carries.
    expected = {"pspnet_r101": "resnet101_v1c-e67eebb6.pth", "deeplabv3p_r101": "resnet101_v1c-e67eebb6.pth",
                "isanet_r101": "resnet101_v1c-e67eebb6.pth", "pspnet_r18": "resnet18_v1c-b5776b93.pth",
                "isanet_r18": "resnet18_v1c-b5776b93.pth", "hrnet_w48": "hrnetv2_w48-d2186c55.pth",
                "hrnet_w18s": "hrnetv2_w18_small-b5a04e21.pth", "pspnet_r18b": "resnet18-f37072fd.pth",
                "deeplabv3p_mv2": "mobilenet_v2_batch256_imagenet_20200708-3b2dc3af.pth"}
    assert set(expected) == set(ARCHS)
    for arch, filename in expected.items():
        entry = registry.backbone(arch)
        assert entry.url.rsplit("/", 1)[-1] == filename, arch
        assert filename.removesuffix(".pth").endswith("-" + entry.sha256), arch


def test_malformed_registry_errors_name_the_key():
    good = registry.load()
    with pytest.raises(registry.RegistryError, match=r"datasets\.ade20k\.isanet_r101_r18\.teacher\.sha256"):
        data = yaml.safe_load(registry.REGISTRY_FILE.read_text())
        data["datasets"]["ade20k"]["isanet_r101_r18"]["teacher"]["sha256"] = "not-hex"
        registry.parse(data)
    with pytest.raises(registry.RegistryError, match=r"datasets\.cityscapes\.hrnet_w48_w18s: missing"):
        data = yaml.safe_load(registry.REGISTRY_FILE.read_text())
        del data["datasets"]["cityscapes"]["hrnet_w48_w18s"]
        registry.parse(data)
    with pytest.raises(registry.RegistryError, match=r"pspnet_r101_r18\.released\.baseline\.arch: unknown "
                                                     r"architecture 'pspnet_r18c'"):
        data = yaml.safe_load(registry.REGISTRY_FILE.read_text())
        data["datasets"]["cityscapes"]["pspnet_r101_r18"]["released"]["baseline"]["arch"] = "pspnet_r18c"
        registry.parse(data)
    with pytest.raises(registry.RegistryError, match=r"ade20k\.pspnet_r101_r18\.teacher\.arch: a teacher must"):
        data = yaml.safe_load(registry.REGISTRY_FILE.read_text())
        data["datasets"]["ade20k"]["pspnet_r101_r18"]["teacher"]["arch"] = "pspnet_r18b"
        registry.parse(data)
    assert registry.load() is good


def test_a_trained_teacher_dataset_may_list_released_students_only():
    """`synthetic` trains its teacher: its entry lists released students of one's own and
    no teacher (tests/test_released_table.py serves such files to a whole `dvc repro`)."""
    data = yaml.safe_load(registry.REGISTRY_FILE.read_text())
    assert "synthetic" not in data["datasets"]  # the shipped file lists none
    own = {"url": "https://example.org/bpkd_synthetic.pth", "sha256": "0123abcd"}
    data["datasets"]["synthetic"] = {"hrnet_w48_w18s": {"released": {"bpkd": own}}}
    reg = registry.parse(data)
    assert reg.released["synthetic", "hrnet_w48_w18s", "bpkd"].url == own["url"]
    assert ("synthetic", "hrnet_w48_w18s") not in reg.teachers
    data["datasets"]["synthetic"]["hrnet_w48_w18s"]["teacher"] = own
    with pytest.raises(registry.RegistryError, match=r"datasets\.synthetic\.hrnet_w48_w18s\.teacher: "
                                                     r"teacher@synthetic-hrnet_w48_w18s trains its teacher"):
        registry.parse(data)


def _mmseg_0x_zoo_file(state_dict) -> dict:
    """A checkpoint as mmseg 0.x's model zoo publishes it (tools/train.py, then
    tools/publish_model.py, which drops the optimizer and appends the hash to the
    name): the segmentor's own keys, in an OrderedDict carrying torch's per-module
    ``_metadata`` as mmcv saved it, under ``state_dict``, beside a ``meta`` of plain
    values. A zoo file has no wrapper prefix, and mmseg 0.x's EncoderDecoder keys are
    1.x's (1.x's data_preprocessor holds no saved tensors), so the file's keys are the
    model's; what the converter has to get through is the nesting and the meta."""
    meta = {"mmseg_version": "0.11.0+2b8a3a6", "mmcv_version": "1.2.4", "seed": 0, "iter": 80000,
            "exp_name": "pspnet_r18b-d8_512x1024_80k_cityscapes.py", "config": "norm_cfg = dict(type='SyncBN')\n",
            "CLASSES": ("road", "sidewalk"), "PALETTE": [[128, 64, 128], [244, 35, 232]], "hook_msgs": {}}
    return {"meta": meta, "state_dict": state_dict}


def test_released_r18b_baseline_resolves_converts_and_evaluates(server, tmp_path):
    """released@cityscapes-pspnet_r101_r18-baseline end to end: the stage takes the
    registry's entry, builds mmseg's pspnet_r18b (not the pair's V1c student),
    downloads the file from 127.0.0.1, converts it and evaluates it on a tiny
    prepared Cityscapes. The file is a random pspnet_r18b in mmseg 0.x's zoo layout
    whose classifier says "road" everywhere, so the metrics follow from the labels."""
    from bpkd.datasets.prepare import prepare
    from bpkd.weights.convert import build_arch
    from test_prepare_real import CITY_IDS, CITY_NAMES, _cityscapes, _params

    torch.manual_seed(0)
    weights = build_arch("pspnet_r18b", 19).state_dict()
    assert hasattr(weights, "_metadata") and not any(k.startswith("data_preprocessor.") for k in weights)
    # Constant logits, largest for class 0 (road): every pixel is predicted road.
    weights["decode_head.conv_seg.weight"] = torch.zeros_like(weights["decode_head.conv_seg.weight"])
    weights["decode_head.conv_seg.bias"] = torch.nn.functional.one_hot(torch.tensor(0), 19).float()
    buf = tmp_path / "zoo.pth"
    torch.save(_mmseg_0x_zoo_file(weights), buf)
    payload = buf.read_bytes()
    entry = registry.released("cityscapes", "pspnet_r101_r18", "baseline")
    server.files["/" + entry.filename] = payload

    # The file does not fit the pair's student: ResNet-18 V1c has a 3-conv stem.
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint, e\.g\. \['backbone\.stem\.0\.weight'"):
        convert_checkpoint(buf, build_arch("pspnet_r18", 19))

    # The registry, with only this entry's URL and hash replaced (the real file is on
    # download.openmmlab.com, and no local file has its hash), in a copy of src/ that
    # the stage imports instead of the installed one.
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    reg_file = src / "bpkd" / "weights" / "registry.yaml"
    data = yaml.safe_load(reg_file.read_text())
    served = data["datasets"]["cityscapes"]["pspnet_r101_r18"]["released"]["baseline"]
    served.update(url=server.url("/" + entry.filename), sha256=hashlib.sha256(payload).hexdigest(), mirrors=[])
    reg_file.write_text(yaml.safe_dump(data, sort_keys=False))

    work = tmp_path / "work"
    raw = _cityscapes(tmp_path / "raw")
    val, dropped = CITY_NAMES["val"]  # one validation image: each is evaluated at 1024x1707 (mmseg's scale)
    for f in [*raw.glob(f"*/val/{dropped}_*")]:
        f.unlink()
    prepare(_params("cityscapes", raw, counts={"train": 3, "val": 1}), "cityscapes",
            work / "data" / "prepared" / "cityscapes")
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree.update(profile="smoke", datasets=["cityscapes"], pairs=["pspnet_r101_r18"], models=[],
                released=["baseline"], baseline_seeds=[])
    (work / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "evaluate.py"), "--released", "--dataset",
                           "cityscapes", "--pair", "pspnet_r101_r18", "--model", "baseline", "--out", "m.json",
                           "--per-class", "c.json"], cwd=work, env=dict(tool_env(), PYTHONPATH=str(src)),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert server.requests == [("/" + entry.filename, None)]
    converted = work / "data" / "weights" / "converted" / "pspnet_r18b" / entry.filename
    assert f"{converted.relative_to(work)}: converted from {server.url('/' + entry.filename)}: 160 tensors" \
        in proc.stdout
    assert "cityscapes/pspnet_r101_r18/baseline (pspnet_r18b): mIoU" in proc.stdout
    loaded = torch.load(converted, weights_only=True)["state_dict"]
    assert loaded.keys() == weights.keys() and all(torch.equal(loaded[k], weights[k]) for k in weights)

    # Expected numbers from the val labels: road (labelId 7) and car (26) are the only
    # valid classes, everything is predicted road, ignored pixels do not count.
    ids = cv2.imread(str(raw / "gtFine" / "val" / f"{val}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
    train_ids = np.vectorize(CITY_IDS.get)(ids)
    road, car = int((train_ids == 0).sum()), int((train_ids == 13).sum())
    # IoU(road) = road / (road + car) (every valid pixel predicted road), IoU(car) = 0,
    # other classes absent and unpredicted (NaN, left out of the mean); Acc: 100 and 0.
    summary = json.loads((work / "m.json").read_text())
    assert summary["aAcc"] == round(100 * road / (road + car), 2)
    assert summary["mIoU"] == round(100 * road / (road + car) / 2, 2)
    assert summary["mAcc"] == 50.0


def test_evaluate_released_unlisted_for_one_pair_records_no_scores(tmp_path):
    """released@cityscapes-hrnet_w48_w18s-cirkd, every model being released: the paper has
    no HRNet CIRKD file for Cityscapes, so the stage downloads nothing and records that,
    and the report's row is `—` (the tables' reading of it: test_report.py)."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree.update(datasets=["cityscapes"], methods=[], models=[], released=list(registry.RELEASED_MODELS),
                baseline_seeds=[])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "evaluate.py"), "--released", "--dataset",
                           "cityscapes", "--pair", "hrnet_w48_w18s", "--model", "cirkd", "--out", "m.json",
                           "--per-class", "c.json"], cwd=tmp_path, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cityscapes/hrnet_w48_w18s/cirkd: the paper released no checkpoint" in proc.stdout
    assert json.loads((tmp_path / "m.json").read_text()) == {"released": False}
    assert json.loads((tmp_path / "c.json").read_text()) == []
    assert not (tmp_path / "data").exists()  # nothing downloaded
