"""Weights: the downloader against a real HTTP server on 127.0.0.1, the converter on
a real mmseg student, and the registry's entries."""
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from bpkd.weights import CheckpointError, load_into
from bpkd.weights import registry
from bpkd.weights.convert import convert_checkpoint
from bpkd.weights.download import DownloadError, HashMismatch, NetworkUnavailable, download

from conftest import REPO, run, tool_env

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


def test_openmmlab_hashes_match_their_file_names():
    for entry in registry.load().entries():
        name_hash = re.search(r"-([0-9a-f]{8,})\.pth$", entry.filename)
        if "openmmlab.com" in entry.url:
            assert name_hash and entry.sha256 == name_hash.group(1), entry.key
            for mirror in entry.mirrors:
                assert mirror.rsplit("/", 1)[-1] == entry.filename, entry.key
        else:  # the BPKD GitHub releases publish no hash
            assert entry.url.startswith("https://github.com/AkideLiu/BPKD/releases/") and entry.sha256 is None


def test_every_released_student_and_teacher_link_of_the_seed_readme_is_listed():
    readme = REPO.parent / "shared" / "reference" / "bpkd_readme.md"
    if not readme.is_file():
        pytest.skip("seed README not available")
    links = set(re.findall(r"\[Model\]\((https://[^)]+)\)", readme.read_text()))
    listed = {e.url for e in registry.load().entries()} | {e.readme_url for e in registry.load().entries()}
    assert links - listed == set()
    assert len(registry.load().released) == 70  # 72 rows, two without a link


def test_lookups_and_their_errors():
    assert registry.released("ade20k", "hrnet_w48_w18s", "bpkd").filename == "bpkd_80k_hrnet_r18_ade20k_student.pth"
    with pytest.raises(registry.RegistryError, match="no 'cirkd' checkpoint for cityscapes/hrnet_w48_w18s"):
        registry.released("cityscapes", "hrnet_w48_w18s", "cirkd")
    assert registry.backbone("pspnet_r18").sha256 == "b5776b93"
    mv2 = registry.backbone("deeplabv3p_mv2")
    assert mv2.prefix == "backbone." and mv2.sha256 == "3b2dc3af"
    entry = registry.teacher("cityscapes", "pspnet_r101_r18")
    assert registry.find_url(entry.mirrors[0]) is entry


def test_every_architecture_has_its_pretrained_backbone_listed():
    from bpkd.models.pairs import ARCHS

    for arch in ARCHS:
        assert registry.backbone(arch).sha256, arch


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
    assert registry.load() is good


def test_released_checkpoint_of_another_architecture_is_refused_before_download(tmp_path):
    # The seed's Cityscapes PSPNet-R18 baseline is mmseg's R18b model, not the pair's
    # R18-V1c student: refused with the registry's reason, nothing downloaded or written.
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree.update(datasets=["cityscapes"], pairs=["pspnet_r101_r18"], models=[], released=["baseline"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    proc = run([sys.executable, str(REPO / "stages" / "evaluate.py"), "--released", "--dataset", "cityscapes",
                "--pair", "pspnet_r101_r18", "--model", "baseline", "--out", "m.json", "--per-class", "c.json"],
               tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "is a pspnet_r18b model, not the pair's pspnet_r18" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
