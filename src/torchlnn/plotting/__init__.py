"""Figures of the analysis results; matplotlib is imported on the first plot, not on import.

Every function returns a matplotlib ``Figure`` (Agg canvas, no window, no pyplot state) or an
image array, and writes a file only when given a ``path``. Compute the data with
``torchlnn.analysis`` first:

* ``plot_wiring``: the wiring diagram, with learned weights;
* ``plot_activity``, ``plot_pca``, ``plot_pca_comparison``, ``plot_correlation``: activity;
* ``plot_time_constants``: LTC time constants over a sequence;
* ``plot_lipschitz``, ``plot_input_sensitivity``: sensitivity;
* ``overlay_attention``, ``plot_attention``, ``attention_video_frames``,
  ``write_attention_animation``: attention over camera frames;
* ``figure_to_array``: render a figure to pixels.
"""

from ._figure import figure_to_array
from .activity import (
    plot_activity,
    plot_correlation,
    plot_input_sensitivity,
    plot_lipschitz,
    plot_pca,
    plot_pca_comparison,
    plot_time_constants,
)
from .attention import (
    attention_video_frames,
    overlay_attention,
    plot_attention,
    write_attention_animation,
)
from .wiring import plot_wiring

__all__ = [
    "plot_wiring",
    "plot_activity",
    "plot_pca",
    "plot_pca_comparison",
    "plot_correlation",
    "plot_time_constants",
    "plot_lipschitz",
    "plot_input_sensitivity",
    "overlay_attention",
    "plot_attention",
    "attention_video_frames",
    "write_attention_animation",
    "figure_to_array",
]
