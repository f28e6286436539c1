"""The command line: one clear line per error by default, the traceback with --debug."""

import subprocess
import sys


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instructmix.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_errors_are_one_line_unless_debug(tmp_path):
    missing = str(tmp_path / "missing.gguf")
    plain = _cli("convert-gguf", missing, str(tmp_path / "out"))
    assert plain.returncode == 1
    assert plain.stderr.startswith("error: ") and missing in plain.stderr
    assert "Traceback" not in plain.stderr and "--debug" in plain.stderr
    debug = _cli("convert-gguf", missing, str(tmp_path / "out"), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_config_errors_list_every_problem(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {bogus: 1}\nselect: {budget: abc}\n")
    proc = _cli("run", str(cfg))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "train.bogus" in proc.stderr and "select.budget" in proc.stderr


def test_solver_chatter_is_shown_only_with_debug(capsys):
    import logging

    from instructmix import cli

    solver = logging.getLogger("mip.cbc")
    try:
        assert cli.main(["schema"]) == 0
        assert not solver.isEnabledFor(logging.INFO)
        assert solver.isEnabledFor(logging.WARNING)
        assert cli.main(["schema", "--debug"]) == 0
        assert solver.isEnabledFor(logging.INFO)
    finally:
        logging.getLogger("mip").setLevel(logging.NOTSET)
