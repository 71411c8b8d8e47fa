"""A stage's log holds what concerns its user: mmseg's "Could not import OneDL" notice
(printed twice) and mmcv-lite's MultiScaleDeformableAttention warning are dropped at
stage start (``bpkd.cli.run``), every other message and warning still shows."""
import subprocess
import sys
import textwrap

# Starts like a stage script: a main that imports and registers mmseg's modules, run by
# cli.run; it prints a line of its own and raises a warning of its own.
STAGE = textwrap.dedent("""
    import warnings
    from bpkd import cli

    def main():
        from mmseg.utils import register_all_modules
        register_all_modules()
        import mmcv.cnn.bricks.transformer  # noqa: F401  (what mmseg.models imports)
        print("stage output")
        warnings.warn("a warning of the stage's own")

    cli.run(main)
""")
# The same imports without cli.run: what a log held before.
BARE = textwrap.dedent("""
    import warnings
    from mmseg.utils import register_all_modules
    register_all_modules()
    import mmcv.cnn.bricks.transformer  # noqa: F401
    warnings.warn("a warning of the stage's own")
""")
ONEDL = "Could not import OneDL"
MSDA = "Fail to import ``MultiScaleDeformableAttention``"


def _run(code: str, cwd) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def test_library_import_noise_is_dropped_and_nothing_else(tmp_path):
    # No params.yaml in cwd: pin_cpu_kernels leaves the host's kernels, as it does for a bad file.
    out, err = _run(BARE, tmp_path)
    assert out.count(ONEDL) == 2 and MSDA in err  # the real sources still emit them

    out, err = _run(STAGE, tmp_path)
    assert ONEDL not in out + err and MSDA not in out + err, out + err
    assert out == "stage output\n"
    assert "UserWarning: a warning of the stage's own" in err


def test_a_stage_that_never_imports_mmseg_does_not_load_it(tmp_path):
    code = textwrap.dedent("""
        import sys
        from bpkd import cli

        cli.run(lambda: print("mmseg loaded:", "mmseg" in sys.modules, "torch loaded:", "torch" in sys.modules))
    """)
    out, _ = _run(code, tmp_path)
    assert out == "mmseg loaded: False torch loaded: False\n"
