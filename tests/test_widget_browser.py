"""Real-browser test of the latent explorer in JupyterLab 4 (ipywidgets 8).

Starts JupyterLab headless on 127.0.0.1 (free port, token, every Jupyter/IPython/
matplotlib/XDG folder and HOME in a temporary directory), opens a small notebook
that builds the explorer from a randomly initialised EmotionVAE and 16 random
"clips" with emotion labels (fixed seeds, no dataset) in Debian's Chromium driven
by Playwright, runs all cells from the Run menu, then

1. presses a slider's arrow key repeatedly and measures, in the page, the time from
   the key event to the new spectrogram <img> *and* <audio> source (median printed;
   issue 12's target is 150 ms on a quiet machine, ``EMOVAE_LATENCY_BUDGET_MS``
   sets the asserted budget, default 500 ms for a busy one);
2. drags a slider slowly and checks that several updates arrive *while* dragging;
3. drags the emotion-direction amount to 1, then the 2-D pad, and checks that
   both change the output; 4. plays A/B; the start drop-down never goes blank.

``EMOVAE_EXPLORER_MODEL`` (a saved model) with the RAVDESS data builds the
explorer from that model and Actor 01's clips instead, and
``EMOVAE_EXPLORER_SHOT`` (a .png path) keeps a screenshot of the explorer: the
README's picture is made that way.

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
N_LATENCY = 15  # key presses timed
# Issue 12's target is a 150 ms median on a quiet machine; the assertion leaves room for a busy one
# (the number is printed either way). Set EMOVAE_LATENCY_BUDGET_MS=150 to hold the target itself.
LATENCY_BUDGET_MS = float(os.environ.get("EMOVAE_LATENCY_BUDGET_MS", "500"))

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) "
           "to run the real-browser widget test",
)

NOTEBOOK_SOURCE = f"""\
import os, sys, numpy as np, pandas as pd, torch
torch.manual_seed(0)
from emovae_utils.models import EmotionVAE
from emovae_utils.widgets import latent_explorer
model = EmotionVAE(latent_dim={LATENT_DIM}).eval()
emotions = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
X = np.random.default_rng(0).normal(-40, 12, size=(16, 80, 128)).astype(np.float32)
with torch.no_grad():  # the colour scale of the (untrained) decoder's output
    clim = tuple(np.percentile(model.decode(torch.randn(16, {LATENT_DIM}) * 2).numpy(), [1, 99]))
index = pd.DataFrame({{"actor": [1] * 16, "emotion": emotions * 2, "intensity": ["normal"] * 8 + ["strong"] * 8,
                      "statement": [1] * 16, "repetition": [1] * 16}})
if os.environ.get("EMOVAE_EXPLORER_MODEL"):  # a trained model and Actor 01's clips (README screenshot)
    from emovae_utils import data
    from emovae_utils.models import load_model
    model, _ = load_model(os.environ["EMOVAE_EXPLORER_MODEL"])
    X_all, index_all = data.load_features(progress=False)
    rows = index_all[(index_all.actor == 1) & (index_all.statement == 1)]
    X, index = X_all[rows.index], rows.reset_index(drop=True)
    clim = None
print("KERNEL_PYTHON=" + sys.executable)
latent_explorer(model, X, index, clim=clim)
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


def _renders(page) -> int:
    status = page.locator(".emovae-latent-explorer .emovae-status").inner_text()
    m = re.search(r"render (\d+)", status)
    return int(m.group(1)) if m else 0


_INSTRUMENT = """() => {
    const root = document.querySelector('.emovae-latent-explorer');
    const img = root.querySelector('img.emovae-spectrogram');
    const aud = root.querySelector('audio.emovae-audio');
    const log = window.__emovae = {img: [], aud: [], keys: [], pointer: []};
    new MutationObserver(() => log.img.push(performance.now()))
        .observe(img, {attributes: true, attributeFilter: ['src']});
    new MutationObserver(() => log.aud.push(performance.now()))
        .observe(aud, {attributes: true, attributeFilter: ['src']});
    document.addEventListener('keydown', () => log.keys.push(performance.now()), true);
    document.addEventListener('pointermove', () => log.pointer.push(performance.now()), true);
}"""


def _counts(page) -> tuple[int, int]:
    return tuple(page.evaluate("() => [window.__emovae.img.length, window.__emovae.aud.length]"))


def _wait_counts(page, old: tuple[int, int], what: str, log_tail) -> tuple[int, int]:
    """Wait until both the <img> and the <audio> source changed since ``old`` (counts of changes)."""
    try:
        page.wait_for_function(
            "([i, a]) => window.__emovae.img.length > i && window.__emovae.aud.length > a",
            arg=list(old), timeout=UPDATE_TIMEOUT_MS)
    except Exception as exc:
        pytest.fail(f"image/audio did not update after {what}: {exc}{_shot(page, 'no_update')}\n"
                    f"server log:\n{log_tail()}")
    return _counts(page)


def _drag(page, locator, dx: float, dy: float = 0.0, steps: int = 10, pause_ms: int = 0,
          at: tuple[float, float] | None = None) -> None:
    """Press on ``locator`` (its centre, or ``at`` as fractions of its box), move by (dx, dy), release."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box, "no layout box to drag"
    fx, fy = at or (0.5, 0.5)
    x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(x + dx * k / steps, y + dy * k / steps)
        if pause_ms:
            page.wait_for_timeout(pause_ms)
    page.mouse.up()


def test_latent_explorer_in_jupyterlab(lab_server, browser):
    base, token, log_tail = lab_server
    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1500, "height": 1200})
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
                    const p = document.querySelector('.emovae-latent-explorer .emovae-pad-area');
                    return i && a && p && i.src.startsWith('blob:') && a.src.startsWith('blob:')
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

        root = page.locator(".emovae-latent-explorer")
        sliders = root.locator(".emovae-slider")
        assert sliders.count() == LATENT_DIM
        sliders = root.locator(".emovae-slider:not(.emovae-inactive-slider)")  # shown, most used first
        assert sliders.count() >= 2
        audio = root.locator("audio.emovae-audio")
        assert audio.get_attribute("autoplay") is None
        start = root.locator(".emovae-start select")
        start_value = start.input_value()
        assert start_value, "the start drop-down shows nothing"
        _wait_renders(page, 1, "running the notebook")
        page.evaluate(_INSTRUMENT)

        # 1) latency: one key press on the most used dimension's slider, until the new
        #    image *and* audio are in the page; repeated, median printed
        handle = sliders.nth(0).locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        handle.focus()
        latencies = []
        for _ in range(N_LATENCY):
            old = _counts(page)
            n_keys = page.evaluate("() => window.__emovae.keys.length")
            handle.press("PageUp")  # a bigger step than an arrow: the image surely changes
            _wait_counts(page, old, "PageUp on the first slider", log_tail)
            t_key, t_img, t_aud = page.evaluate(
                "([k, i, a]) => [window.__emovae.keys[k], window.__emovae.img[i], window.__emovae.aud[a]]",
                [n_keys, old[0], old[1]])
            latencies.append(max(t_img, t_aud) - t_key)
            page.wait_for_timeout(120)  # let the kernel go idle between presses
        median = float(sorted(latencies)[len(latencies) // 2])
        print(f"\ninput event -> new image and audio in the browser: median {median:.0f} ms, "
              f"min {min(latencies):.0f}, max {max(latencies):.0f} ms over {len(latencies)} key presses "
              f"(target <= 150 ms median; budget asserted here {LATENCY_BUDGET_MS:.0f} ms)")
        assert median <= LATENCY_BUDGET_MS, f"median latency {median:.0f} ms: {latencies}"
        readout0 = float(sliders.nth(0).locator(".widget-readout").inner_text().strip())
        assert readout0 > 0.1, f"first slider readout after {N_LATENCY} PageUp: {readout0}"
        assert start.input_value() == start_value, "the start drop-down changed after a slider move"

        # 2) a continuous drag: updates arrive while the mouse button is still down
        handle2 = sliders.nth(1).locator(".noUi-handle")
        handle2.scroll_into_view_if_needed()
        box = handle2.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        before = _counts(page)
        renders0 = _renders(page)
        page.mouse.move(x, y)
        page.mouse.down()
        for k in range(1, 31):
            page.mouse.move(x + 3 * k, y)
            page.wait_for_timeout(40)
        during = _counts(page)
        renders_during = _renders(page) - renders0
        page.mouse.up()
        intermediate = min(during[0] - before[0], during[1] - before[1])
        print(f"drag of 1.2 s (30 moves): {intermediate} image+audio updates arrived while dragging, "
              f"{renders_during} kernel renders")
        assert intermediate >= 3, f"only {intermediate} updates arrived while dragging"
        page.wait_for_timeout(300)
        readout = float(sliders.nth(1).locator(".widget-readout").inner_text().strip())
        assert readout > 0.3, f"second slider readout after the drag: {readout}"
        assert start.input_value() == start_value

        # 3) the emotion direction: drag its amount to 1
        old = _counts(page)
        _drag(page, root.locator(".emovae-amount .noUi-handle"), 400, steps=8)
        _wait_counts(page, old, "moving the emotion amount", log_tail)
        page.wait_for_function(
            """() => /toward/.test(document.querySelector('.emovae-latent-explorer .emovae-status').innerText)""",
            timeout=UPDATE_TIMEOUT_MS)
        amount = float(root.locator(".emovae-amount .widget-readout").inner_text().strip())
        assert amount == pytest.approx(1.0), amount
        # (at amount 1 the point *is* the emotion's mean: back to 0 before using the pad)
        old = _counts(page)
        _drag(page, root.locator(".emovae-amount .noUi-handle"), -400, steps=8)
        _wait_counts(page, old, "moving the emotion amount back", log_tail)

        # 4) the pad: drag from the top-left corner toward the bottom right
        pad = root.locator(".emovae-pad-area")
        n_shown = sliders.count()
        sliders_before = [sliders.nth(i).locator(".widget-readout").inner_text() for i in range(n_shown)]
        old = _counts(page)
        _drag(page, pad, 120, 120, steps=12, pause_ms=20, at=(0.1, 0.1))
        _wait_counts(page, old, "dragging on the pad", log_tail)
        page.wait_for_timeout(300)
        sliders_after = [sliders.nth(i).locator(".widget-readout").inner_text() for i in range(n_shown)]
        assert sliders_after != sliders_before, "the pad did not move the sliders"

        # 5) A/B: the A/B player gets "start, pause, current"
        ab = root.locator("audio.emovae-ab-audio")
        ab_src0 = ab.get_attribute("src") or ""
        root.locator(".emovae-ab").click()
        page.wait_for_function(
            """(old) => {
                const a = document.querySelector('.emovae-latent-explorer audio.emovae-ab-audio');
                return a && a.src.startsWith('blob:') && a.src !== old;
            }""", arg=ab_src0, timeout=UPDATE_TIMEOUT_MS)
        assert audio.get_attribute("autoplay") is None, "the main player must not autoplay by default"

        shot = os.environ.get("EMOVAE_EXPLORER_SHOT")
        if shot:  # the README's picture: the explorer alone
            page.wait_for_timeout(500)
            root.screenshot(path=shot)
        _shot(page, "final")
        print(f"explorer rendered {t_render:.1f} s after page load start; "
              f"total {time.monotonic() - t0:.1f} s")
    finally:
        context.close()
