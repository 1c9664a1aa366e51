"""Figure creation and saving shared by the plotting functions.

Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas attached, never pyplot
figures: nothing opens a window, nothing is kept in pyplot's global state, and the figure is
freed when the caller drops it. Matplotlib is imported on the first plot, not on import.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

# Colours of the neuron types; custom types take the next colour of _EXTRA_COLORS.
TYPE_COLORS = {
    "sensory": "#bdbdbd",
    "inter": "#4292c6",
    "command": "#fd8d3c",
    "motor": "#807dba",
    "hidden": "#969696",
}
_EXTRA_COLORS = ("#74c476", "#f768a1", "#8c6d31", "#17becf", "#bcbd22", "#e7969c")
EXCITATORY_COLOR = "#238b45"
INHIBITORY_COLOR = "#cb181d"


def type_colors(types: list[str]) -> dict[str, str]:
    """Return a colour for each distinct neuron type in ``types``."""
    colors: dict[str, str] = {}
    extra = 0
    for name in dict.fromkeys(types):
        if name in TYPE_COLORS:
            colors[name] = TYPE_COLORS[name]
        else:
            colors[name] = _EXTRA_COLORS[extra % len(_EXTRA_COLORS)]
            extra += 1
    return colors


def require_matplotlib() -> Any:
    """Import and return matplotlib, or raise an ImportError that names the extra to install."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "torchlnn.plotting needs matplotlib. Install it with: pip install 'torchlnn[viz]'"
        ) from error
    return matplotlib


def new_figure(width: float, height: float, rows: int = 1, columns: int = 1, **subplot_kw):
    """Return ``(figure, axes)``: an Agg-backed figure and a (rows, columns) array of axes."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, **subplot_kw)
    return figure, axes


def finish(figure, path: str | os.PathLike | None, dpi: int = 120):
    """Save ``figure`` to ``path`` when one is given (format from the suffix) and return it."""
    if path is not None:
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"cannot write the figure to {os.fspath(path)!r}: the folder {folder!r} does not "
                f"exist. Create it first."
            )
        figure.savefig(path, dpi=dpi)
    return figure


def figure_to_array(figure) -> np.ndarray:
    """Render ``figure`` with Agg and return its pixels, uint8 (H, W, 4) RGBA."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()
