"""The report page in a real browser: Debian's headless chromium parses it (the DOM holds
every figure as SVG, no raw repr) and paints it (the screenshot is not blank and shows the
figures' colours). Needs `apt-get install -y chromium`; skipped without it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from instructmix.layout import REPORT, RunLayout
from instructmix.report import run_report
from tests.report.fakes import PROBE_CATS, full_run
from tests.report.svg import leaks
from tests.report.test_figures import FULL_RUN_FIGURES

WIDTH, HEIGHT = 1200, 12000
# colours only the figures paint: tab10 orange (compare bars), RdBu's darkest blue (Γ = 2.5)
FIGURE_COLOURS = {"orange bars": (255, 127, 14), "dark blue Γ cell": (5, 48, 97)}


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return exe


def _run(exe: str, profile, *args: str) -> str:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    exe = _chromium()
    root = tmp_path / "run"
    run_report(full_run(root), RunLayout(root, "report"))
    url = RunLayout(root).path(REPORT.html).as_uri()

    dom = _run(exe, tmp_path / "profile-dom", "--dump-dom", url)
    assert len(re.findall(r"<svg\b", dom)) == FULL_RUN_FIGURES
    assert "Best compare arm: mix+sit" in dom
    for cat in PROBE_CATS:  # DAG and heat map labels are text the browser keeps
        assert f">{cat}</text>" in dom
    assert leaks(dom) == []

    shot = tmp_path / "report.png"
    _run(exe, tmp_path / "profile-shot", f"--screenshot={shot}",
         f"--window-size={WIDTH},{HEIGHT}", url)
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (WIDTH, HEIGHT)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables, figures: not blank
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.97 * WIDTH * HEIGHT
    painted = {c for _, c in colours}
    for what, rgb in FIGURE_COLOURS.items():
        near = [c for c in painted if max(abs(a - b) for a, b in zip(c, rgb, strict=True)) <= 6]
        assert near, f"no {what} in the screenshot: figures not painted"
