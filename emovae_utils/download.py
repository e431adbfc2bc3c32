"""Download the RAVDESS speech audio from Zenodo, with resume and MD5 check.

The archive ``Audio_Speech_Actors_01-24.zip`` (Zenodo record 1188976) is
downloaded to ``<dest>/Audio_Speech_Actors_01-24.zip.part``, resumed with an
HTTP ``Range`` request when a ``.part`` file is already there, checked against
its MD5 and only then renamed to ``Audio_Speech_Actors_01-24.zip`` and
extracted. Unverified data only ever lives under the ``.part`` name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shlex
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

__all__ = [
    "ZENODO_URL",
    "RAVDESS_MD5",
    "ZIP_NAME",
    "DownloadError",
    "ChecksumError",
    "default_data_dir",
    "dataset_is_complete",
    "download_ravdess",
]

ZENODO_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
RAVDESS_MD5 = "bc696df654c87fed845eb13823edef8a"
ZIP_NAME = "Audio_Speech_Actors_01-24.zip"
N_ACTORS = 24

_CHUNK = 1 << 20  # bytes per read / hash update
_ACTOR_RE = re.compile(r"Actor_\d{2}")
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, timeouts, resets


class DownloadError(RuntimeError):
    """The RAVDESS archive could not be downloaded, verified or extracted."""


class ChecksumError(DownloadError):
    """The archive's MD5 does not match the expected one."""


def default_data_dir() -> Path:
    """Return the default download folder, ``<project root>/data/ravdess``.

    Returns
    -------
    pathlib.Path
        The project root is the parent of the ``emovae_utils`` package folder.
    """
    return Path(__file__).resolve().parent.parent / "data" / "ravdess"


def dataset_is_complete(path: str | os.PathLike) -> bool:
    """Tell whether ``path`` holds all 24 ``Actor_XX`` folders, each with files.

    Parameters
    ----------
    path : str or os.PathLike
        Folder expected to hold ``Actor_01`` ... ``Actor_24``.

    Returns
    -------
    bool
        True when every ``Actor_01`` ... ``Actor_24`` folder exists and holds
        at least one file.
    """
    root = Path(path)
    for i in range(1, N_ACTORS + 1):
        actor = root / f"Actor_{i:02d}"
        if not actor.is_dir() or not any(p.is_file() for p in actor.iterdir()):
            return False
    return True


def _again(dest: Path) -> str:
    """How to try again: the shell command, and the Python call."""
    return f"run `emovae download {shlex.quote(str(dest))}` again (in Python: download_ravdess({str(dest)!r}))"


def _hint(dest: Path) -> str:
    return (
        "If you already have a copy of RAVDESS, either\n"
        f"  - put the extracted Actor_01 ... Actor_24 folders into {dest},\n"
        "    or set the environment variable EMOVAE_DATA_DIR to the folder that holds them, or\n"
        f"  - put {ZIP_NAME} into {dest} and {_again(dest)}."
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "emovae-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _fetch(url: str, part: Path, dest: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from the bytes already there."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as err:
            if err.code != 416 or not offset:
                raise
            # Range not satisfiable: complete already (MD5 decides) or bogus.
            match = re.fullmatch(r"bytes\s+\*/(\d+)", err.headers.get("Content-Range", "").strip())
            err.close()
            if match and int(match.group(1)) == offset:
                return
            part.unlink()
            offset = 0
            response = _open(url, offset, timeout)
        with response:
            total = None
            if response.status == 206:
                match = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", "").strip())
                if match is None or int(match.group(1)) != offset:
                    raise DownloadError(
                        f"Server answered the Range request for byte {offset} with "
                        f"Content-Range {response.headers.get('Content-Range')!r}. "
                        f"Delete {part} and {_again(dest)}."
                    )
                if match.group(3) != "*":
                    total = int(match.group(3))
            else:  # 200: the server sent the whole file (it may have ignored Range)
                offset = 0
            length = response.headers.get("Content-Length")
            if total is None and length is not None:
                total = offset + int(length)
            with (
                open(part, "ab" if offset else "wb") as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=ZIP_NAME,
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        err.close()
        raise DownloadError(
            f"Could not download RAVDESS from {url}: HTTP {err.code} {err.reason}.\n{_hint(dest)}"
        ) from err
    except _NETWORK_ERRORS as err:
        kept = f" Partial download kept at {part}; to resume it, {_again(dest)}." if part.exists() else ""
        raise DownloadError(
            f"Could not download RAVDESS from {url}: {err}.{kept}\n{_hint(dest)}"
        ) from err
    size = part.stat().st_size
    if total is not None and size < total:
        raise DownloadError(
            f"Download of {url} stopped after {size} of {total} bytes. Partial download kept at "
            f"{part}; {_again(dest)} to resume.\n{_hint(dest)}"
        )


def _move_tree(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, merging into ``dst`` (files overwritten) if it exists."""
    if not dst.exists():
        os.replace(src, dst)
        return
    for child in src.iterdir():
        if child.is_dir():
            _move_tree(child, dst / child.name)
        else:
            os.replace(child, dst / child.name)


def _extract(archive: Path, dest: Path) -> None:
    """Extract the ``Actor_XX`` folders of ``archive`` into ``dest``, safely."""
    tmp = Path(tempfile.mkdtemp(prefix=".ravdess-extract-", dir=dest)).resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                target = (tmp / member.filename).resolve()
                if Path(member.filename).is_absolute() or not target.is_relative_to(tmp):
                    raise DownloadError(
                        f"Refusing to extract {archive}: member {member.filename!r} "
                        "would be written outside the destination folder."
                    )
            zf.extractall(tmp)
        actors = [
            p
            for p in sorted(tmp.rglob("Actor_*"))
            if p.is_dir()
            and _ACTOR_RE.fullmatch(p.name)
            and "__MACOSX" not in p.relative_to(tmp).parts
            and not _ACTOR_RE.fullmatch(p.parent.name)
        ]
        if not actors:
            raise DownloadError(f"{archive} holds no Actor_XX folders.")
        for actor in actors:
            _move_tree(actor, dest / actor.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_ravdess(
    dest: str | os.PathLike | None = None,
    *,
    url: str = ZENODO_URL,
    md5: str = RAVDESS_MD5,
    keep_zip: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download, verify and extract the RAVDESS speech audio into ``dest``.

    Nothing is downloaded when ``dest`` already holds all 24 ``Actor_XX``
    folders, or when ``dest`` holds ``Audio_Speech_Actors_01-24.zip`` with the
    expected MD5. Otherwise the archive is downloaded to
    ``<dest>/Audio_Speech_Actors_01-24.zip.part`` (resuming a previous partial
    download with an HTTP Range request), its MD5 is checked, and only then is
    it renamed to ``Audio_Speech_Actors_01-24.zip`` and extracted. The
    ``Actor_XX`` folders are moved into ``dest`` (an extra top-level folder in
    the archive is tolerated). A download cut short by a network error or
    ``KeyboardInterrupt`` keeps its ``.part`` file; calling again resumes it.

    Parameters
    ----------
    dest : str or os.PathLike, optional
        Target folder; created if missing. ``None`` means
        ``<project root>/data/ravdess`` (see :func:`default_data_dir`).
    url : str, optional
        Where to download the archive from (default: Zenodo record 1188976).
    md5 : str, optional
        Expected MD5 hex digest of the archive.
    keep_zip : bool, optional
        Keep the verified archive in ``dest`` after extraction (default False).
    timeout : float, optional
        Socket timeout in seconds for connecting and for each read.

    Returns
    -------
    pathlib.Path
        ``dest``, the folder holding the ``Actor_XX`` folders.

    Raises
    ------
    DownloadError
        No network or an HTTP error (the message says where to put an existing
        copy: ``Actor_XX`` folders in ``dest``, ``EMOVAE_DATA_DIR``, or the zip
        in ``dest``); a transfer cut short; an archive that is unsafe to
        extract or holds no ``Actor_XX`` folders.
    ChecksumError
        The MD5 of the downloaded archive (the download is deleted) or of an
        archive already in ``dest`` (left in place) does not match ``md5``.
    """
    dest = Path(default_data_dir() if dest is None else dest).expanduser()
    if dataset_is_complete(dest):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / ZIP_NAME
    part = dest / (ZIP_NAME + ".part")
    expected = md5.lower()

    if archive.exists():
        actual = _md5(archive)
        if actual != expected:
            raise ChecksumError(
                f"{archive} has MD5 {actual}, expected {expected}. "
                "Replace it with a good copy or delete it to download again."
            )
    else:
        _fetch(url, part, dest, timeout)
        actual = _md5(part)
        if actual != expected:
            part.unlink()
            raise ChecksumError(
                f"MD5 mismatch for the download from {url}: expected {expected}, got {actual}. "
                f"The download was discarded; to retry, {_again(dest)}."
            )
        os.replace(part, archive)

    _extract(archive, dest)
    if not keep_zip:
        archive.unlink()
    return dest
