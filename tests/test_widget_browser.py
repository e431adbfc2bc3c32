"""Real-browser test of the latent explorer in JupyterLab 4 (ipywidgets 8).

Starts JupyterLab headless on 127.0.0.1 (free port, token, every Jupyter/IPython/
matplotlib/XDG folder and HOME in a temporary directory), opens a small notebook
that builds the explorer from a randomly initialised EmotionVAE (fixed seed, no
dataset) in Debian's Chromium driven by Playwright, runs all cells from the Run
menu, then moves sliders (mouse drag, then keyboard) and checks that the
spectrogram <img> and the <audio> sources change.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``; another binary can be
given in ``EMOVAE_CHROMIUM``); skipped, with the reason, otherwise. Set
``EMOVAE_BROWSER_SHOTS`` to a folder to keep screenshots of failures (and of the
final state).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("EMOVAE_CHROMIUM", "/usr/bin/chromium")  # Debian's chromium
REPO = Path(__file__).resolve().parents[1]
LATENT_DIM = 8
SERVER_START_TIMEOUT = 60
PAGE_TIMEOUT_MS = 45_000  # JupyterLab load, kernel start and first render
UPDATE_TIMEOUT_MS = 30_000  # one decode + Griffin-Lim round trip

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) "
           "to run the real-browser widget test",
)

NOTEBOOK_SOURCE = f"""\
import sys, torch
torch.manual_seed(0)
from emovae_utils.models import EmotionVAE
from emovae_utils.widgets import latent_explorer
model = EmotionVAE(latent_dim={LATENT_DIM}).eval()
print("KERNEL_PYTHON=" + sys.executable)
latent_explorer(model)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_SOURCE)]
    nbformat.write(nb, path)


def _json_dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _api(base: str, token: str, route: str, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(f"{base}{route}", method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """JupyterLab on a free local port; yields (base_url, token, log_path)."""
    tmp = tmp_path_factory.mktemp("lab")
    root, home = tmp / "root", tmp / "home"
    data, config, runtime = tmp / "jupyter_data", tmp / "jupyter_config", tmp / "jupyter_runtime"
    for d in (root, home, data, config, runtime):
        d.mkdir()
    _write_notebook(root / "explorer.ipynb")

    # The kernel must be this venv's python: an explicit kernelspec in the
    # (first-searched) temporary data dir.
    _json_dump(data / "kernels" / "python3" / "kernel.json", {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python",
    })
    # No news/update pop-ups; render every cell (no virtual windowing).
    settings = config / "lab" / "user-settings" / "@jupyterlab"
    _json_dump(settings / "apputils-extension" / "notification.jupyterlab-settings",
               {"fetchNews": "false", "checkForUpdates": False})
    _json_dump(settings / "notebook-extension" / "tracker.jupyterlab-settings",
               {"windowingMode": "none"})

    env = dict(os.environ)
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "JUPYTER_DATA_DIR": str(data), "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(tmp / "ipython"), "MPLCONFIGDIR": str(tmp / "mpl"),
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    port, token = _free_port(), uuid.uuid4().hex
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / "jupyterlab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.news_url=None", "--ServerApp.terminals_enabled=False",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def log_tail(n: int = 3000) -> str:
        log.flush()
        return log_path.read_bytes()[-n:].decode(errors="replace")

    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{log_tail()}")
            try:
                _api(base, token, "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT} s:\n{log_tail()}")
                time.sleep(0.3)
        yield base, token, log_tail
    finally:
        # shut the kernels down through the API, then stop the server
        try:
            for k in _api(base, token, "/api/kernels"):
                _api(base, token, f"/api/kernels/{k['id']}", method="DELETE", timeout=10)
        except Exception:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # jupyter_server stops and cleans up
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium_home")
    pw = sync_playwright().start()
    b = None
    try:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
            env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                 "XDG_CACHE_HOME": str(home / ".cache")},
            timeout=30_000,
        )
        yield b
    finally:
        if b is not None:
            b.close()
        pw.stop()
        shutil.rmtree(home, ignore_errors=True)


def _shot(page, name: str) -> str:
    """Screenshot into $EMOVAE_BROWSER_SHOTS (for debugging failures), if set."""
    out = os.environ.get("EMOVAE_BROWSER_SHOTS")
    if not out:
        return ""
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True, timeout=10_000)
    except Exception as exc:  # pragma: no cover - debugging aid only
        return f" (screenshot failed: {exc})"
    return f" (screenshot: {path})"


def _srcs(page) -> tuple[str, str]:
    img = page.locator(".emovae-latent-explorer img.emovae-spectrogram")
    aud = page.locator(".emovae-latent-explorer audio.emovae-audio")
    return img.get_attribute("src") or "", aud.get_attribute("src") or ""


def _wait_renders(page, at_least: int, what: str) -> int:
    """Wait until the explorer's status line reports >= ``at_least`` kernel renders."""
    try:
        page.wait_for_function(
            """(n) => {
                const h = document.querySelector('.emovae-latent-explorer .emovae-status');
                const m = h && /render (\\d+)/.exec(h.innerText);
                return m && parseInt(m[1]) >= n;
            }""", arg=at_least, timeout=UPDATE_TIMEOUT_MS)
    except Exception as exc:
        status = page.locator(".emovae-latent-explorer .emovae-status").inner_text()
        pytest.fail(f"kernel did not report render {at_least} after {what}: {exc}; status {status!r}")
    status = page.locator(".emovae-latent-explorer .emovae-status").inner_text()
    return int(re.search(r"render (\d+)", status).group(1))


def _wait_srcs_change(page, old: tuple[str, str], what: str, log_tail) -> tuple[str, str]:
    try:
        page.wait_for_function(
            """([img, aud]) => {
                const i = document.querySelector('.emovae-latent-explorer img.emovae-spectrogram');
                const a = document.querySelector('.emovae-latent-explorer audio.emovae-audio');
                return i && a && i.src.startsWith('blob:') && a.src.startsWith('blob:')
                       && i.src !== img && a.src !== aud;
            }""",
            arg=list(old), timeout=UPDATE_TIMEOUT_MS,
        )
    except Exception as exc:
        pytest.fail(f"image/audio did not update after {what}: {exc}{_shot(page, 'no_update')}\n"
                    f"srcs now {_srcs(page)}\n"
                    f"server log:\n{log_tail()}")
    return _srcs(page)


def test_latent_explorer_in_jupyterlab(lab_server, browser):
    base, token, log_tail = lab_server
    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}", wait_until="domcontentloaded")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
        # Kernel started and connected before running: the status bar reads
        # "Python 3 (ipykernel) | Idle". (Waiting on the notebook's execution
        # indicator alone was not enough: running all cells right after it said
        # "idle" opened JupyterLab's "Select Kernel" dialog.)
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('.jp-StatusBar-Item'))
                     .some(e => /\\(ipykernel\\)\\s*\\|\\s*Idle/.test(e.innerText))""")

        # Run > Run All Cells
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        # should a kernel dialog still come up, accept the default (the venv's python3)
        dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        try:
            dialog.wait_for(state="visible", timeout=1_500)
            dialog.click()
        except Exception:
            pass

        try:
            page.wait_for_function(
                """() => {
                    const i = document.querySelector('.emovae-latent-explorer img.emovae-spectrogram');
                    const a = document.querySelector('.emovae-latent-explorer audio.emovae-audio');
                    return i && a && i.src.startsWith('blob:') && a.src.startsWith('blob:')
                           && i.naturalWidth > 0;
                }""")
        except Exception as exc:
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            pytest.fail(f"explorer did not render: {exc}{_shot(page, 'no_render')}\noutputs: {outputs}\n"
                        f"console: {console[-20:]}\nserver log:\n{log_tail()}")
        t_render = time.monotonic() - t0

        out_text = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
        m = re.search(r"KERNEL_PYTHON=(\S+)", out_text)
        assert m, f"kernel did not print its executable; outputs: {out_text!r}"
        assert Path(m.group(1)).resolve() == Path(sys.executable).resolve(), \
            f"kernel runs {m.group(1)}, not this venv's {sys.executable}"

        sliders = page.locator(".emovae-latent-explorer .emovae-slider")
        assert sliders.count() == LATENT_DIM
        audio = page.locator(".emovae-latent-explorer audio.emovae-audio")
        assert audio.get_attribute("autoplay") is None
        renders = _wait_renders(page, 1, "running the notebook")
        srcs0 = _srcs(page)

        # 1) drag the handle of z0 to the right and release
        handle = sliders.nth(0).locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        assert box, "slider handle has no layout box"
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 40, y, steps=5)
        page.mouse.move(x + 80, y, steps=5)
        page.mouse.up()
        renders = _wait_renders(page, renders + 1, "dragging slider z0")
        srcs1 = _wait_srcs_change(page, srcs0, "dragging slider z0", log_tail)
        readout0 = sliders.nth(0).locator(".widget-readout").inner_text().strip()
        assert float(readout0) > 0.5, f"z0 readout after drag: {readout0!r}"

        # 2) keyboard: focus the handle of z1 and press PageUp (a bigger step)
        handle1 = sliders.nth(1).locator(".noUi-handle")
        handle1.focus()
        handle1.press("PageUp")
        renders = _wait_renders(page, renders + 1, "PageUp on slider z1")
        srcs2 = _wait_srcs_change(page, srcs1, "PageUp on slider z1", log_tail)
        readout1 = sliders.nth(1).locator(".widget-readout").inner_text().strip()
        assert float(readout1) > 0, f"z1 readout after PageUp: {readout1!r}"

        # one kernel render per release (the status line counts them)
        assert renders == 3, f"expected 3 renders (initial, drag, key), got {renders}"
        assert len({srcs0, srcs1, srcs2}) == 3
        _shot(page, "final")
        print(f"\nexplorer rendered {t_render:.1f} s after page load start; "
              f"total {time.monotonic() - t0:.1f} s")
    finally:
        context.close()
