"""Atomic outputs (issue 6): a stage that fails or is killed (SIGKILL) while writing
leaves each output either as its previous complete content or absent, never half
written. Killing `report` and `evaluate` at the right instant by timing is flaky, so
the stages are run with ``bpkd.atomic.atomic_path`` wrapped to stop (print 'ready'
and sleep) after the new content is written to the temporary file and before the
rename: the latest moment a kill can hit. A bare ``atomic_path`` killed half-way
through writing covers the earliest one."""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from bpkd.atomic import atomic_path, write_json
from conftest import REPO


# Runs a stage script with every atomic write after the first `skip` ones paused
# just before its rename.
PAUSED_STAGE = textwrap.dedent("""
    import contextlib, runpy, sys, time
    import bpkd.atomic as atomic

    real, skip, script = atomic.atomic_path, int(sys.argv[1]), sys.argv[2]
    seen = []

    @contextlib.contextmanager
    def paused(target, is_dir=False):
        with real(target, is_dir) as tmp:
            yield tmp
            seen.append(target)
            if len(seen) > skip:
                print("ready", target, flush=True)
                time.sleep(600)

    atomic.atomic_path = paused
    sys.argv = sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
""")


def _kill_when_ready(cmd: list[str], cwd: Path) -> str:
    """Start ``cmd``, wait for its 'ready' line, SIGKILL it; returns the line."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("ready"):
            line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"{cmd} ended before pausing:\n{proc.stderr.read()[-3000:]}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        return line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_serialisation_error_keeps_previous_file(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"mIoU": 1.0})
    with pytest.raises(TypeError):
        write_json(target, {"mIoU": object()})
    assert json.loads(target.read_text()) == {"mIoU": 1.0}
    assert _leftovers(tmp_path) == []


def test_failure_mid_write_keeps_previous_folder(tmp_path):
    target = tmp_path / "prepared"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(OSError):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "a.txt").write_text("new, half")
            raise OSError("disk full")
    assert [p.name for p in target.iterdir()] == ["a.txt"] and (target / "a.txt").read_text() == "old"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_usual_mode(tmp_path, umask):
    """mkstemp/mkdtemp create 0600/0700; an output gets what open()/mkdir() give under
    the umask (0644/0755 under 022, 0600/0700 under 077), as dataset.json inside a folder."""
    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"mIoU": 1.0})
        with atomic_path(tmp_path / "prepared", is_dir=True) as tmp:
            write_json(tmp / "dataset.json", {"dataset": "x"})
    finally:
        os.umask(old)
    want_file, want_dir = {0o022: (0o644, 0o755), 0o077: (0o600, 0o700)}[umask]
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == want_file
    assert stat.S_IMODE((tmp_path / "prepared" / "dataset.json").stat().st_mode) == want_file
    assert stat.S_IMODE((tmp_path / "prepared").stat().st_mode) == want_dir


@pytest.mark.parametrize("is_dir", [False, True])
def test_sigkill_half_way_keeps_previous_output(tmp_path, is_dir):
    target = tmp_path / ("out" if is_dir else "out.json")
    old = '{"complete": true}\n'
    if is_dir:
        target.mkdir()
        (target / "a.json").write_text(old)
    else:
        target.write_text(old)
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from bpkd.atomic import atomic_path
        with atomic_path({str(target)!r}, is_dir={is_dir}) as tmp:
            f = open(Path(tmp) / "a.json" if {is_dir} else tmp, "w")
            f.write('{{"compl')
            f.flush()
            print("ready", flush=True)
            time.sleep(600)
            f.write('ete": false}}')
    """)
    _kill_when_ready([sys.executable, "-c", code], tmp_path)
    assert (target / "a.json" if is_dir else target).read_text() == old
    if is_dir:
        assert [p.name for p in target.iterdir()] == ["a.json"]
    # What a kill leaves is one hidden temporary sibling, never the target itself...
    (leftover,) = _leftovers(tmp_path)
    assert leftover.startswith(f".{target.name}.tmp-")
    # ...and the next write of the same target (the stage's rerun) removes it.
    with atomic_path(target, is_dir=is_dir) as tmp:
        (Path(tmp) / "a.json" if is_dir else Path(tmp)).write_text('{"rerun": true}\n')
    assert (target / "a.json" if is_dir else target).read_text() == '{"rerun": true}\n'
    assert _leftovers(tmp_path) == []


def _stage_dir(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text()
                                          .replace("profile: demo", "profile: smoke", 1))
    return tmp_path


def test_report_killed_before_rename_keeps_previous_tables(tmp_path):
    cwd = _stage_dir(tmp_path)
    out = cwd / "metrics" / "tables.md"
    out.parent.mkdir()
    out.write_text("# previous complete tables\n")
    line = _kill_when_ready([sys.executable, "-c", PAUSED_STAGE, "0", str(REPO / "stages" / "report.py"),
                             "--out", "metrics/tables.md"], cwd)
    assert line.split()[1] == "metrics/tables.md"
    assert out.read_text() == "# previous complete tables\n"
    # The killed run had written the whole new table, only to a hidden temporary file.
    (tmp,) = [p for p in out.parent.iterdir() if p.name.startswith(".tables.md.tmp-")]
    assert tmp.read_text().startswith("# Results")


def test_evaluate_killed_between_its_two_writes(tmp_path):
    """evaluate writes the per-class data, then the summary that `report` reads: killed
    before the summary's rename, the summary is the previous one and the per-class
    file the new one, each complete JSON (never a new summary without its per-class
    data)."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from bpkd.datasets import specs
    from bpkd.datasets.synthetic import CLASSES, generate
    from bpkd.models.build import model_config
    from bpkd.models.pairs import arch_of
    from bpkd.weights import save_checkpoint

    cwd = _stage_dir(tmp_path)
    pair = yaml.safe_load((cwd / "params.yaml").read_text())["pairs"][0]
    data = cwd / "data" / "prepared" / "synthetic"
    generate(data, 1, 2, 64, 128, seed=0)
    write_json(data / "dataset.json", dict(dataset="synthetic", image_hw=[64, 128]))
    spec = specs.get("synthetic")
    register_all_modules()
    model = MODELS.build(model_config(arch_of(pair, "student"), spec.num_classes, (64, 128)).to_dict())
    save_checkpoint(model.state_dict(), cwd / "baseline.pth")

    summary, per_class = cwd / "metrics" / "eval.json", cwd / "metrics" / "per_class.json"
    write_json(summary, {"mIoU": 99.0, "mAcc": 99.0, "aAcc": 99.0})
    write_json(per_class, [{"class": "road", "IoU": 99.0, "Acc": 99.0}])
    old_summary = summary.read_text()
    line = _kill_when_ready([sys.executable, "-c", PAUSED_STAGE, "1", str(REPO / "stages" / "evaluate.py"),
                             "--dataset", "synthetic", "--pair", pair, "--model", "baseline",
                             "--checkpoint", "baseline.pth", "--out", str(summary),
                             "--per-class", str(per_class)], cwd)
    assert line.split()[1] == str(summary)
    assert summary.read_text() == old_summary
    rows = json.loads(per_class.read_text())  # complete JSON: the new per-class data
    assert [r["class"] for r in rows] == list(CLASSES)
