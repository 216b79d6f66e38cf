"""Real-browser tests: JupyterLab on 127.0.0.1 driven by Debian's chromium through Playwright for Python.

One JupyterLab, one ``train_clm.ipynb`` (its cells run once), then, in order, as a user would:

1. a data source that does not exist is rejected in the form (inline error, Start and Export disabled);
2. Export on an invalid form is disabled, with the reason shown;
3. a preset switch changes the model and what the preset defines, keeps the user's max_steps, and says so;
4. Start, the live plot, a browser reload: the dashboard re-attaches and keeps updating; the notebook's cells run
   again (a new ``Workbench``) show the same live run and Stop it;
5. a second Start makes a new run directory, the dashboard clears, and the two runs' files never mix;
6. the Sweep panel: a field and two values, Start sweep, the live table of the points, two complete run directories
   of the form's configuration and the summary notebook.

Screenshots go to ``tests/workbench/artifacts/`` (ignored by git): ``browser-reattached.png`` (the live dashboard
after the reload), ``browser.png`` (the end of the runs) and ``browser-sweep.png`` (the sweep's table). Needs ``apt-get install -y chromium`` (Playwright's own browser
download cannot work offline); skipped when ``/usr/bin/chromium`` is missing.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from perceiver import tasks

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                 reason="needs Debian's chromium: apt-get install -y chromium")]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "perceiver-workbench-test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
MINUTE = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab():
    # a private directory: concurrent pytest sessions prune each other's basetemp directories
    tmp_path = Path(tempfile.mkdtemp(prefix="perceiver-browser-"))
    shutil.copy(ROOT / "notebooks" / "train_clm.ipynb", tmp_path / "train_clm.ipynb")
    port = free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
           "--allow-root", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    # every cell in the page (JupyterLab leaves cells outside the viewport unrendered by default, e.g. after a reload)
    settings = tmp_path / ".jupyterlab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # runs go below this directory, as they go below the repository root in a checkout
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter-config"), "PERCEIVER_ROOT": str(tmp_path),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / ".jupyterlab-settings")}
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
    for status in (tmp_path / "runs").rglob("status.json"):  # never leave a training process behind
        (status.parent / "STOP").touch()
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def page(jupyterlab):
    from playwright.sync_api import sync_playwright

    url, _ = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(2 * MINUTE)
        page.goto(f"{url}/lab/tree/train_clm.ipynb?token={TOKEN}")
        open_notebook(page)
        print("[browser] notebook open; run all cells", flush=True)
        run_all(page)
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def failure_screenshot(request, page):
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        page.screenshot(path=str(ARTIFACTS / f"browser-failure-{request.node.name}.png"), full_page=True)


# --- page helpers -----------------------------------------------------------------------------------------------


def open_notebook(page) -> None:
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=2 * MINUTE)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-KernelStatus",
                           timeout=2 * MINUTE)
    dismiss_dialogs(page)


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


def run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    start_button(page).wait_for(timeout=5 * MINUTE)
    wait_enabled(page, "Start")


def button(page, text: str):
    return page.locator("button.widget-button").filter(has_text=re.compile(rf"^\s*{text}\s*$"))


def start_button(page):
    return button(page, "Start")


def wait_enabled(page, text: str, enabled: bool = True, timeout: int = MINUTE) -> None:
    page.wait_for_function(
        "([text, enabled]) => [...document.querySelectorAll('button.widget-button')].some("
        "b => b.textContent.trim() === text && b.disabled !== enabled)", arg=[text, enabled], timeout=timeout)


def field(page, name: str):
    """The input of the form field labelled ``name`` (number boxes send their value on Enter or when left: press
    Enter after filling them)."""
    row = page.locator(".widget-hbox").filter(has=page.locator(".widget-label", has_text=re.compile(rf"^{name}$")))
    return row.locator("input, select").first


def status_text(page) -> str:
    return page.locator(".widget-html").filter(has_text=re.compile(r"— run ")).first.inner_text()


def curves_src(page) -> str:
    image = page.locator(".widget-image").first
    return image.get_attribute("src") if image.is_visible() else ""


def wait_for_new_curves(page, old: str = "", timeout: int = 5 * MINUTE) -> str:
    page.wait_for_function(
        "old => { const img = document.querySelector('.widget-image'); "
        "return img && img.offsetParent !== null && img.getAttribute('src') && img.getAttribute('src') !== old; }",
        arg=old, timeout=timeout)
    return curves_src(page)


def run_dirs(root: Path) -> list[Path]:
    base = root / "runs" / "clm"
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


# --- the tests, in order ------------------------------------------------------------------------------------------


def test_a_bad_source_is_rejected_in_the_form(page):
    source = field(page, "source")
    source.fill("/nonexistent")
    page.get_by_text("/nonexistent does not exist").first.wait_for()
    wait_enabled(page, "Start", enabled=False)
    wait_enabled(page, "Export YAML", enabled=False)
    source.fill("sample")
    wait_enabled(page, "Start")


def test_export_on_an_invalid_form_is_disabled_with_the_reason(page, jupyterlab):
    _, root = jupyterlab
    lr = field(page, "lr")
    lr.fill("abc")
    wait_enabled(page, "Export YAML", enabled=False)
    page.get_by_text("Start and Export need a valid form").first.wait_for()
    assert "'abc' is not valid" in page.locator(".widget-html").filter(has_text="Start and Export").first.inner_text()
    button(page, "Export YAML").click(force=True)  # a click on the disabled button does nothing
    assert not (root / "runs" / "clm" / "config.yaml").exists()
    lr.fill("0.002")
    wait_enabled(page, "Export YAML")
    button(page, "Export YAML").click()
    page.get_by_text(re.compile(r"^exported /.*runs/clm/config\.yaml; train with")).first.wait_for()
    exported = (root / "runs" / "clm" / "config.yaml").read_text()
    assert "devices: -1" in exported and "run_dir: runs/clm/{time}" in exported and "accelerator" not in exported


def test_a_preset_switch_keeps_the_users_settings_and_says_what_it_changed(page):
    field(page, "max_steps").fill("40")
    field(page, "max_steps").press("Enter")
    page.locator(".widget-dropdown select").first.select_option("Perceiver AR (30.6M)")
    tiny = tasks.get("clm").presets["tiny CPU"].settings
    page.get_by_text(f"max_seq_len {tiny['max_seq_len']} → 4096").first.wait_for()
    note = page.locator(".widget-html").filter(has_text="preset Perceiver AR").first.inner_text()
    assert "kept:" in note and "max_steps" in note.split("kept:")[1]
    assert field(page, "max_steps").input_value() == "40"
    page.get_by_text("parameters: 30.6M").first.wait_for()
    page.locator(".widget-dropdown select").first.select_option("tiny CPU")
    page.get_by_text(f"max_steps 40 → {tiny['max_steps']}").first.wait_for()
    wait_enabled(page, "Start")


def test_reload_then_reattach(page, jupyterlab):
    _, root = jupyterlab
    start_button(page).click()
    first = wait_for_new_curves(page)
    print("[browser] first run: loss plot shown; saving the notebook and reloading the page", flush=True)
    page.keyboard.press("Control+s")
    time.sleep(2)
    page.reload()
    open_notebook(page)
    # the widgets come back with the kernel's state, and the dashboard's thread keeps them current
    start_button(page).wait_for(state="attached", timeout=3 * MINUTE)
    start_button(page).scroll_into_view_if_needed()
    assert "running" in status_text(page)
    wait_for_new_curves(page, first)
    page.locator(".widget-image").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-reattached.png"), full_page=True)
    print("[browser] reloaded page shows the live run; running the cells again (a new Workbench)", flush=True)
    run_all(page)  # a new Workbench attaches itself to the latest run, which still runs
    page.get_by_text(re.compile(r"running, step \d+")).first.wait_for(timeout=2 * MINUTE)
    [run] = run_dirs(root)
    assert str(run) in status_text(page)
    wait_enabled(page, "Stop")
    button(page, "Stop").click()
    page.get_by_text(re.compile(r"stopped at step \d+/\d+ \(STOP file\)")).first.wait_for(timeout=3 * MINUTE)
    wait_enabled(page, "Resume")


def test_a_second_run_never_mixes_with_the_first(page, jupyterlab):
    _, root = jupyterlab
    [first] = run_dirs(root)
    first_steps = json.loads((first / "status.json").read_text())["step"]
    start_button(page).click()
    page.get_by_text("loss curves appear here").first.wait_for(timeout=30_000)  # the dashboard forgot run 1
    assert "stopped" not in status_text(page)
    wait_for_new_curves(page)
    button(page, "Stop").click()
    page.get_by_text(re.compile(r"stopped at step \d+/\d+")).first.wait_for(timeout=3 * MINUTE)
    wait_enabled(page, "Resume", timeout=3 * MINUTE)  # the process has ended
    page.locator(".widget-image").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
    print(f"screenshots: {ARTIFACTS / 'browser-reattached.png'}, {ARTIFACTS / 'browser.png'}", flush=True)

    runs = run_dirs(root)
    assert len(runs) == 2 and runs[0] == first
    second = runs[1]
    assert str(second) in status_text(page)
    assert json.loads((first / "status.json").read_text())["step"] == first_steps  # run 1 untouched
    for run in runs:
        status = json.loads((run / "status.json").read_text())
        assert status["status"] == "stopped" and status["run_dir"] == str(run)
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
                 if "train_loss" in line]
        assert steps == list(range(1, status["step"] + 1))  # one record per step of this run, nothing else
        assert (run / "checkpoints" / "final.ckpt").is_file()
        assert not list((run / "checkpoints").glob("*-v1.ckpt"))


def test_the_sweep_panel_runs_a_sweep_and_shows_its_table_live(page, jupyterlab):
    _, root = jupyterlab
    for name, value in (("max_steps", "4"), ("max_seq_len", "64"), ("batch_size", "4")):  # short points
        field(page, name).fill(value)
        field(page, name).press("Enter")
    page.get_by_text("sweep: vary fields of this form").first.click()
    values = page.get_by_placeholder(re.compile(r"or LOW\.\.HIGH$")).first
    values.wait_for()
    values.fill("0.001, 0.003")
    button(page, "Start sweep").click()
    # "sweeping optimizer.lr=0.001,0.003 in <dir>", then the live count: "running: 0 point(s) finished · <dir>"
    page.get_by_text(re.compile(r"^(sweeping optimizer\.lr=0\.001,0\.003|running: \d point\(s\) finished) ")).first \
        .wait_for(timeout=30_000)
    print("[browser] sweep started; waiting for the table's first point", flush=True)
    table = page.locator("table.perceiver-runs").first
    table.wait_for(timeout=5 * MINUTE)  # the live table appears with the first point, before the sweep ends
    first_rows = table.locator("tbody tr").count()
    page.get_by_text(re.compile(r"^sweep finished")).first.wait_for(timeout=8 * MINUTE)
    page.locator("table.perceiver-runs").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-sweep.png"), full_page=True)
    rows = page.locator("table.perceiver-runs tbody tr")
    assert first_rows >= 1 and rows.count() == 2
    assert all("completed" in rows.nth(i).inner_text() for i in range(2))
    [sweep_dir] = (root / "runs" / "clm-sweep").iterdir()
    points = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name != "plots")
    assert [p.name for p in points] == ["000-lr=0.001", "001-lr=0.003"]
    for point in points:
        assert json.loads((point / "status.json").read_text())["status"] == "completed"
        config = yaml.safe_load((point / "config.yaml").read_text())
        assert config["trainer"]["max_steps"] == 4  # the form's configuration, with the swept value
        assert config["data"]["init_args"]["max_seq_len"] == 64
        assert config["optimizer"]["init_args"]["lr"] == float(point.name.split("=")[1])
    assert (sweep_dir / "sweep.ipynb").is_file() and (sweep_dir / "plots" / "summary.png").is_file()
