"""Real-browser test: JupyterLab on 127.0.0.1 driven by Debian's chromium through Playwright for Python.

Opens ``train_clm.ipynb``, runs its cells, picks the tiny preset, clicks Start, waits until the loss plot changes,
clicks Stop and waits until the run has ended (with its checkpoint). Saves a screenshot to
``tests/workbench/artifacts/browser.png``. Needs ``apt-get install -y chromium`` (Playwright's own browser download
cannot work offline); skipped when ``/usr/bin/chromium`` is missing.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
SCREENSHOT = ARTIFACTS / "browser.png"
TOKEN = "perceiver-workbench-test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab():
    # a private directory: concurrent pytest sessions prune each other's basetemp directories
    tmp_path = Path(tempfile.mkdtemp(prefix="perceiver-browser-"))
    shutil.copy(ROOT / "notebooks" / "train_clm.ipynb", tmp_path / "train_clm.ipynb")
    port = free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0", "--allow-root",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter-config")}
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.terminate()
                pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(1)
    yield url, tmp_path
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(tmp_path, ignore_errors=True)


def dismiss_dialogs(page, wait_s: float = 8.0) -> None:
    """Accept JupyterLab's kernel selection dialog (it appears on some starts) and decline the news prompt."""
    deadline = time.time() + wait_s
    while time.time() < deadline:
        select = page.locator(".jp-Dialog button").filter(has_text="Select")
        if select.count():
            select.first.click()
            break
        time.sleep(0.5)
    news = page.locator(".jp-toast-button").filter(has_text="No")
    if news.count():
        news.first.click()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium: apt-get install -y chromium")
def test_start_live_plot_stop_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    url, root = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/train_clm.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                                   ".jp-KernelStatus", timeout=120_000)
            dismiss_dialogs(page)
            print("[browser] notebook open; run all cells", flush=True)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()

            preset = page.locator(".widget-dropdown select").first
            preset.wait_for(timeout=240_000)
            print("[browser] form shown; picking the tiny preset", flush=True)
            preset.select_option("tiny CPU")
            start = page.locator("button.widget-button").filter(has_text="Start")
            page.wait_for_function("() => [...document.querySelectorAll('button')].some("
                                   "b => b.textContent.trim() === 'Start' && !b.disabled)", timeout=60_000)
            print("[browser] clicking Start", flush=True)
            start.click()

            curves = page.locator(".jp-OutputArea-output img").first
            curves.wait_for(timeout=300_000)  # the first loss plot replaces its placeholder
            print("[browser] first loss plot shown", flush=True)
            first_src = curves.get_attribute("src")
            page.wait_for_function(
                "src => { const img = document.querySelector('.jp-OutputArea-output img'); "
                "return img && img.getAttribute('src') !== src; }", arg=first_src, timeout=180_000)
            page.screenshot(path=str(ARTIFACTS / "browser-training.png"), full_page=True)

            print("[browser] loss plot changed; clicking Stop", flush=True)
            page.locator("button.widget-button").filter(has_text="Stop").click()
            page.get_by_text("finished (exit code").first.wait_for(timeout=180_000)
            curves.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    print(f"screenshot: {SCREENSHOT}")
    metrics = json.loads((root / "runs" / "train_clm" / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["steps"] < 200
    assert (root / "runs" / "train_clm" / "checkpoints" / "final.ckpt").is_file()
