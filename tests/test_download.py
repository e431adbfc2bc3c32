"""Tests for emovae_utils.download against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from emovae_utils import download as dl

TIMEOUT = 5.0


def _make_zip(names: list[str], size: int = 3000) -> bytes:
    """Zip of small pseudo-wav files (random-ish bytes, stored uncompressed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, name in enumerate(names):
            zf.writestr(name, bytes((i * 7 + j * 13) % 256 for j in range(size)))
    return buf.getvalue()


WAVS = [
    "Actor_01/03-01-01-01-01-01-01.wav",
    "Actor_01/03-01-05-01-01-01-01.wav",
    "Actor_02/03-01-01-01-01-01-02.wav",
]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = TIMEOUT  # socket timeout on the server side

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        st = self.server.state
        rng = self.headers.get("Range")
        st["ranges"].append(rng)
        if st["not_found"]:
            self.send_error(404)
            return
        data: bytes = st["payload"]
        start = 0
        if rng is not None and st["honour_range"]:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = st["cut_after"]
        if cut is not None:  # cut the connection once, after `cut` body bytes
            st["cut_after"] = None
            body = body[:cut]
            self.close_connection = True
        self.wfile.write(body)


@pytest.fixture
def server():
    """Serve ``state['payload']`` at ``state['url']``; records Range headers."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {
        "payload": _make_zip(WAVS),
        "cut_after": None,
        "honour_range": True,
        "not_found": False,
        "ranges": [],
        "url": f"http://127.0.0.1:{httpd.server_address[1]}/{dl.ZIP_NAME}?download=1",
    }
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=TIMEOUT)


@pytest.fixture
def closed_url() -> str:
    """URL on 127.0.0.1 whose port has nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{dl.ZIP_NAME}"


def _get(state: dict, dest: Path, **kwargs) -> Path:
    kwargs.setdefault("md5", _md5(state["payload"]))
    return dl.download_ravdess(dest, url=state["url"], timeout=TIMEOUT, **kwargs)


def _assert_extracted(dest: Path, names: list[str] = WAVS) -> None:
    """``dest`` holds exactly the files ``names`` (no .zip, .part or temp folder)."""
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted(names)
    assert sorted(p.name for p in dest.iterdir()) == sorted({n.split("/")[0] for n in names})


def _full_dataset(dest: Path, n: int = 24) -> None:
    for i in range(1, n + 1):
        actor = dest / f"Actor_{i:02d}"
        actor.mkdir(parents=True)
        (actor / f"03-01-01-01-01-01-{i:02d}.wav").write_bytes(b"RIFF")


def test_good_download_verifies_and_extracts(server, tmp_path):
    dest = tmp_path / "ravdess"
    assert _get(server, dest) == dest
    _assert_extracted(dest)  # also: no .zip, .part or temp folder left
    assert (dest / WAVS[0]).read_bytes() == zipfile.ZipFile(io.BytesIO(server["payload"])).read(WAVS[0])
    assert server["ranges"] == [None]


def test_keep_zip(server, tmp_path):
    _get(server, tmp_path, keep_zip=True)
    assert (tmp_path / dl.ZIP_NAME).read_bytes() == server["payload"]
    assert not (tmp_path / (dl.ZIP_NAME + ".part")).exists()


def test_wrong_checksum_discards_download(server, tmp_path):
    with pytest.raises(dl.ChecksumError) as info:
        _get(server, tmp_path, md5="0" * 32)
    msg = str(info.value)
    assert "0" * 32 in msg and _md5(server["payload"]) in msg and "discarded" in msg
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_range(server, tmp_path):
    cut = 1000
    server["cut_after"] = cut
    with pytest.raises(dl.DownloadError, match="resume"):
        _get(server, tmp_path)
    part = tmp_path / (dl.ZIP_NAME + ".part")
    assert part.read_bytes() == server["payload"][:cut]
    assert not (tmp_path / dl.ZIP_NAME).exists()

    _get(server, tmp_path)
    assert server["ranges"] == [None, f"bytes={cut}-"]
    _assert_extracted(tmp_path)


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server["cut_after"] = 1000
    server["honour_range"] = False
    with pytest.raises(dl.DownloadError):
        _get(server, tmp_path)
    _get(server, tmp_path)  # server answers 200 with the whole file
    assert server["ranges"] == [None, "bytes=1000-"]
    _assert_extracted(tmp_path)


def test_complete_part_answered_416_is_verified(server, tmp_path):
    (tmp_path / (dl.ZIP_NAME + ".part")).write_bytes(server["payload"])
    _get(server, tmp_path)
    assert server["ranges"] == [f"bytes={len(server['payload'])}-"]
    _assert_extracted(tmp_path)


def test_oversized_part_answered_416_restarts(server, tmp_path):
    (tmp_path / (dl.ZIP_NAME + ".part")).write_bytes(server["payload"] + b"junk")
    _get(server, tmp_path)
    assert server["ranges"] == [f"bytes={len(server['payload']) + 4}-", None]
    _assert_extracted(tmp_path)


def test_keyboard_interrupt_keeps_part(server, tmp_path, monkeypatch):
    class InterruptingBar(dl.tqdm):
        def update(self, n=1):
            super().update(n)
            raise KeyboardInterrupt

    monkeypatch.setattr(dl, "_CHUNK", 512)
    monkeypatch.setattr(dl, "tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        _get(server, tmp_path)
    part = tmp_path / (dl.ZIP_NAME + ".part")
    assert part.read_bytes() == server["payload"][:512]
    assert not (tmp_path / dl.ZIP_NAME).exists()

    monkeypatch.undo()
    _get(server, tmp_path)
    assert server["ranges"] == [None, "bytes=512-"]
    _assert_extracted(tmp_path)


def test_no_network_gives_clear_error_and_keeps_part(tmp_path, closed_url):
    part = tmp_path / (dl.ZIP_NAME + ".part")
    part.write_bytes(b"partial")
    with pytest.raises(RuntimeError) as info:
        dl.download_ravdess(tmp_path, url=closed_url, timeout=TIMEOUT)
    assert isinstance(info.value, dl.DownloadError)
    msg = str(info.value)
    assert "EMOVAE_DATA_DIR" in msg and "Actor_" in msg and dl.ZIP_NAME in msg and str(tmp_path) in msg
    assert part.read_bytes() == b"partial"


def test_unresponsive_server_times_out(tmp_path):
    with socket.socket() as s:  # listens but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/x.zip"
        with pytest.raises(dl.DownloadError, match="EMOVAE_DATA_DIR"):
            dl.download_ravdess(tmp_path, url=url, timeout=0.5)


def test_http_error_is_download_error(server, tmp_path):
    server["not_found"] = True
    with pytest.raises(dl.DownloadError, match="HTTP 404") as info:
        _get(server, tmp_path)
    assert "EMOVAE_DATA_DIR" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_short_circuits(tmp_path, closed_url):
    _full_dataset(tmp_path)
    assert dl.dataset_is_complete(tmp_path)
    assert dl.download_ravdess(tmp_path, url=closed_url, timeout=TIMEOUT) == tmp_path


def test_incomplete_dataset_does_not_short_circuit(tmp_path, closed_url):
    _full_dataset(tmp_path, n=23)
    (tmp_path / "Actor_24").mkdir()  # present but empty
    assert not dl.dataset_is_complete(tmp_path)
    with pytest.raises(dl.DownloadError):
        dl.download_ravdess(tmp_path, url=closed_url, timeout=TIMEOUT)


def test_zip_in_dest_is_used_without_network(server, tmp_path, closed_url):
    (tmp_path / dl.ZIP_NAME).write_bytes(server["payload"])
    dl.download_ravdess(tmp_path, url=closed_url, md5=_md5(server["payload"]), timeout=TIMEOUT)
    _assert_extracted(tmp_path)


def test_bad_zip_in_dest_raises_and_is_kept(server, tmp_path, closed_url):
    (tmp_path / dl.ZIP_NAME).write_bytes(server["payload"])
    with pytest.raises(dl.ChecksumError, match="1" * 32):
        dl.download_ravdess(tmp_path, url=closed_url, md5="1" * 32, timeout=TIMEOUT)
    assert sorted(p.name for p in tmp_path.iterdir()) == [dl.ZIP_NAME]


def test_extra_top_level_folder_and_macosx(server, tmp_path):
    names = ["RAVDESS/" + n for n in WAVS] + ["__MACOSX/RAVDESS/Actor_01/._03-01-01-01-01-01-01.wav"]
    server["payload"] = _make_zip(names)
    _get(server, tmp_path)
    _assert_extracted(tmp_path)


def test_existing_actor_folder_is_merged(server, tmp_path):
    (tmp_path / "Actor_01").mkdir()
    (tmp_path / "Actor_01" / "notes.txt").write_text("mine")
    _get(server, tmp_path)
    _assert_extracted(tmp_path, WAVS + ["Actor_01/notes.txt"])
    assert (tmp_path / "Actor_01" / "notes.txt").read_text() == "mine"


def test_unsafe_member_is_refused(server, tmp_path):
    server["payload"] = _make_zip(WAVS + ["../evil.wav"])
    dest = tmp_path / "dest"
    with pytest.raises(dl.DownloadError, match="outside"):
        _get(server, dest)
    assert not (tmp_path / "evil.wav").exists()
    assert not any(p.name.startswith("Actor_") for p in dest.iterdir())
    assert not any(p.name.startswith(".ravdess-extract-") for p in dest.iterdir())


def test_default_dest(monkeypatch, tmp_path, closed_url):
    assert dl.default_data_dir() == Path(dl.__file__).resolve().parent.parent / "data" / "ravdess"
    monkeypatch.setattr(dl, "default_data_dir", lambda: tmp_path / "default")
    _full_dataset(tmp_path / "default")
    assert dl.download_ravdess(url=closed_url) == tmp_path / "default"
