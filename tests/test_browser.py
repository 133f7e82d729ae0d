"""The widgets where students use them: JupyterLab in a real headless Chromium.

nbval proves that the notebooks run; this proves that what a student sees in JupyterLab works:
the notebook opens, runs top to bottom in the browser, and dragging the `VideoViewer` slider
shows another frame. It needs Debian's ``chromium`` (``apt-get install chromium``; `.ci/run`
installs it) and the ``playwright`` Python package, which drives that browser; no browser is
ever downloaded. Without them the tests skip, unless ``VOSTUTORIAL_BROWSER_TESTS=required``
(set by `.ci/run`) makes that a failure. Screenshots land in pytest's temporary folder
(``browser0/`` under ``pytest --basetemp`` or the default one); a failure prints where.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# --headless etc. as the issue names them; background networking off because this machine's
# closed network refuses Chromium's calls home, and each refusal costs time
CHROMIUM_FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
# notebook -> how long running all its cells may take in the browser (seconds)
NOTEBOOKS = {"01_data_exploration.ipynb": 180, "05_inference_and_merging.ipynb": 240}


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian: `apt-get install chromium`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (`pip install -e '.[dev]'`)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("VOSTUTORIAL_BROWSER_TESTS") == "required":
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a random token, serving copies of the notebooks (so that
    autosave never touches the committed ones) and with its own settings and workspaces."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    work.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(PROJECT / "notebooks" / name, work / name)
    settings = root / "settings" / "@jupyterlab"
    for plugin, values in {
        # render every cell (JupyterLab 4 otherwise keeps off-screen cells out of the page)
        "notebook-extension/tracker": {"windowingMode": "none"},
        # no "get notified about Jupyter news?" pop-up over the page
        "apputils-extension/notification": {"fetchNews": "false"},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    as_root = ["--allow-root"] if os.geteuid() == 0 else []  # CI containers run as root
    log = open(root / "jupyterlab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
            *as_root,
        ],  # fmt: skip
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (root / "jupyterlab.log").read_text()
                    pytest.fail(f"JupyterLab did not start: {log_text}")
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# JavaScript run in the page (`window.jupyterapp` is there thanks to expose_app_in_browser),
# each given the notebook's path and reading that notebook's panel.
FIND = """const app = window.jupyterapp;
  const nb = app && Array.from(app.shell.widgets('main'))
    .find(w => w.context && w.context.path === path && w.content && w.content.model);"""
KERNEL_IDLE = """path => {
  FIND
  const kernel = nb && nb.sessionContext.session && nb.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected'
    && app.shell.currentWidget === nb;
}""".replace("FIND", FIND)
CELL_STATE = """path => {
  FIND
  const cells = nb.content.model.cells, out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const errors = c.outputs.toJSON().filter(o => o.output_type === 'error')
      .map(o => o.ename + ': ' + o.evalue);
    out.push({count: c.executionCount, errors: errors});
  }
  return {busy: nb.sessionContext.session.kernel.status !== 'idle', cells: out};
}""".replace("FIND", FIND)


def _menu(page, menu: str, item: str) -> None:
    page.get_by_role("menuitem", name=menu, exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def _run_all(page, name: str, timeout: float) -> list[dict]:
    """Clear the committed outputs, then Run > Run All Cells, as a student would, and wait
    until every code cell has run in this kernel: counts 1, 2, ..., N in notebook order."""
    _menu(page, "Edit", "Clear Outputs of All Cells")
    state = page.evaluate(CELL_STATE, name)
    assert not any(c["count"] for c in state["cells"]), "outputs were not cleared"
    _menu(page, "Run", "Run All Cells")
    want = list(range(1, len(state["cells"]) + 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.evaluate(CELL_STATE, name)
        if not state["busy"] and [c["count"] for c in state["cells"]] == want:
            return state["cells"]
        if any(c["errors"] for c in state["cells"]):
            break  # Run All stops at an error
        time.sleep(1)
    raise AssertionError(f"not every cell ran (after up to {timeout} s): {state['cells']}")


def _viewer_shot(viewer) -> bytes:
    """What the viewer's frame images look like right now (PNG bytes of their screenshot)."""
    images = viewer.locator("img")
    return b"".join(images.nth(i).screenshot() for i in range(images.count()))


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_video_viewer_in_jupyterlab(lab, name, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    url, token = lab
    SHOTS = tmp_path_factory.getbasetemp() / "browser"  # never into the project  # noqa: N806
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {SHOTS}")
    stem = Path(name).stem
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # a workspace of its own: only this notebook open, none restored from an earlier test
            page.goto(f"{url}/lab/workspaces/{stem}/tree/{name}?token={token}")
            page.wait_for_function(KERNEL_IDLE, arg=name, timeout=120_000)

            cells = _run_all(page, name, NOTEBOOKS[name])
            errors = [c["errors"] for c in cells if c["errors"]]
            assert not errors, f"{name}: cells raised in the browser: {errors}"
            assert page.locator(".jp-Cell .jp-OutputArea-output").count() > 0

            # the viewer: the output holding a frame slider next to the frame images
            viewer = page.locator(".jp-OutputArea-output").filter(
                has=page.locator(".widget-slider")
            ).last
            viewer.scroll_into_view_if_needed()
            viewer.locator(".widget-image, img").first.wait_for(state="visible", timeout=30_000)
            slider = viewer.locator(".widget-slider .noUi-handle").first
            readout = viewer.locator(".widget-slider .widget-readout").first
            assert readout.inner_text().strip() == "0"
            before = _viewer_shot(viewer)
            page.screenshot(path=SHOTS / f"{stem}-frame0.png")

            # drag the slider handle to the right, as a student would
            box = slider.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 120, y, steps=8)
            page.mouse.up()
            page.wait_for_function(
                "el => el.innerText.trim() !== '0'", arg=readout.element_handle(), timeout=10_000
            )
            frame = int(readout.inner_text())
            # the kernel renders the new frame and sends it back: wait for the pixels to change
            deadline = time.monotonic() + 20
            while (after := _viewer_shot(viewer)) == before and time.monotonic() < deadline:
                time.sleep(0.3)
            page.screenshot(path=SHOTS / f"{stem}-frame{frame}.png")
            assert frame > 0
            assert after != before, f"{name}: slider at frame {frame}, the picture did not change"
        finally:
            browser.close()
