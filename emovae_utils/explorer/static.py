"""What a saved copy of a notebook shows of the explorer: a static snapshot instead of dead controls.

Without a kernel (a notebook opened after it was run), JupyterLab draws the
explorer's widgets from their saved state, marked disconnected: the controls do
nothing. The explorer therefore carries :func:`snapshot_html` (the spectrogram
shown and a player of its audio) in a hidden widget, which ``explorer.css``
shows, and the controls hides, once the views are disconnected; the same HTML is
the ``text/html`` of the explorer's mimebundle, shown where widgets are not
rendered (an untrusted notebook, nbviewer, GitHub). :class:`Debounced` refreshes
the snapshot once the renders pause.
"""
from __future__ import annotations

import base64
import functools
import html
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["snapshot_html", "explorer_box_class", "Debounced", "SNAPSHOT_DELAY_S"]

_STATIC_NOTE = ("Latent explorer: interactive, it needs a live Python kernel (JupyterLab with ipywidgets). "
                "Run the notebook's cells to use it; a saved copy shows a snapshot: the spectrogram and the audio "
                "of the point shown when it was saved.")
#: Seconds without a render before the snapshot (``LatentExplorer.snapshot``) is refreshed.
SNAPSHOT_DELAY_S = 1.0


def snapshot_html(png: bytes, wav: bytes | None, note: str = _STATIC_NOTE) -> str:
    """A static view of the explorer: ``note``, the spectrogram (PNG) and, with ``wav``, a player.

    Examples
    --------
    >>> snapshot_html(b"png", None).count("<audio"), snapshot_html(b"png", b"wav").count("<audio")
    (0, 1)
    """
    img = (f"<img alt='the spectrogram shown' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
           if png else "")
    player = (f"<br><audio controls preload='metadata' src='data:audio/wav;base64,"
              f"{base64.b64encode(wav).decode()}'></audio>" if wav else "")
    return f"<div class='emovae-static'><p><em>{html.escape(note)}</em></p>{img}{player}</div>"


@functools.lru_cache(maxsize=1)
def explorer_box_class():
    """The explorer's top-level box class (an ipywidgets VBox whose mimebundle carries the static view)."""
    import ipywidgets as W

    class ExplorerBox(W.VBox):
        """The explorer's top-level box; a static view (no kernel) shows a note, the image and the audio."""

        def __repr__(self) -> str:
            return _STATIC_NOTE

        def _repr_mimebundle_(self, **kwargs: Any):
            data = super()._repr_mimebundle_(**kwargs)
            if data is None:
                return None
            data["text/plain"] = _STATIC_NOTE
            ex = self.explorer
            data["text/html"] = snapshot_html(ex.png_bytes, ex.wav_bytes or None) if ex is not None else (
                snapshot_html(b"", None))
            return data

    ExplorerBox.explorer = None  # set by LatentExplorer
    return ExplorerBox


class Debounced:
    """Calls ``fn`` once :meth:`touch` was not called for ``delay`` seconds (a timer thread).

    Examples
    --------
    >>> calls = []
    >>> d = Debounced(lambda: calls.append(1), delay=0.05)
    >>> for _ in range(3):
    ...     d.touch()
    >>> time.sleep(0.3); calls
    [1]
    """

    def __init__(self, fn: Callable[[], None], delay: float = SNAPSHOT_DELAY_S) -> None:
        self._fn, self._delay = fn, float(delay)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = 0.0

    def touch(self) -> None:
        """Something changed: call ``fn`` ``delay`` seconds after the last change."""
        self._last = time.monotonic()
        self._start(self._delay)

    def _start(self, delay: float) -> None:
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(delay, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        quiet = time.monotonic() - self._last
        if quiet < self._delay:
            self._start(self._delay - quiet)
        else:
            self._fn()

    def cancel(self) -> None:
        """No call pending any more."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
