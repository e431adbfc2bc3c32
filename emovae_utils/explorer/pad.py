"""The explorer's 2-D blend pad: an anywidget whose front end is the package file ``pad.js``.

The pad is a square; ``position`` = [x, y] in [0, 1]² (y downwards) follows
a drag or the arrow keys (5 % a press), ``labels`` names the four corners. What
the position means (a bilinear blend of four start points) is the explorer's
state (:func:`emovae_utils.explorer.state.blend_weights`).
"""
from __future__ import annotations

import functools
from importlib import resources

__all__ = ["pad_class", "resource_text"]


def resource_text(name: str) -> str:
    """Text of a file shipped in this package (``pad.js``, ``explorer.css``).

    Examples
    --------
    >>> resource_text("pad.js").rstrip().endswith("export default { render };")
    True
    """
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def pad_class():
    """The pad widget class (built once: anywidget and traitlets are imported on first use)."""
    import anywidget
    import traitlets

    class Pad(anywidget.AnyWidget):
        """A square pad; ``position`` = [x, y] in [0, 1]² (y downwards), ``labels`` = corner names."""

        _esm = resource_text("pad.js")
        position = traitlets.List(traitlets.Float(), default_value=[0.5, 0.5]).tag(sync=True)
        labels = traitlets.List(traitlets.Unicode(), default_value=["", "", "", ""]).tag(sync=True)

    return Pad
