"""Look inside a trained network: activity, time constants, sensitivity, attention, wiring.

Every function takes a model and data and returns NumPy arrays or small dataclasses of them;
nothing is drawn, shown or written (``torchlnn.plotting`` draws). The functions work on any
torchlnn layer and, where the idea applies, on ``torch.nn.LSTM``/``GRU`` and CNN baselines, so
that comparisons use the same instrument:

* activity: ``record_activity``, ``activity_pca``, ``neuron_output_correlation``;
* LTC time constants: ``time_constants``;
* sensitivity: ``lipschitz_estimate``, ``ltc_lipschitz_bound``, ``input_sensitivity``;
* image attention: ``visual_backprop``, ``smoothgrad``, ``integrated_gradients``,
  ``attention_robustness``, ``ssim``, and ``live_channels`` for dead conv channels;
* structure: ``wiring_graph``.
"""

from .activity import (
    Activity,
    PCAResult,
    activity_pca,
    neuron_output_correlation,
    record_activity,
)
from .attention import (
    AttentionRobustness,
    FeatureMap,
    attention_robustness,
    conv_feature_maps,
    integrated_gradients,
    live_channels,
    smoothgrad,
    visual_backprop,
)
from .parameters import count_parameters
from .sensitivity import (
    LipschitzBound,
    LipschitzEstimate,
    input_sensitivity,
    lipschitz_estimate,
    ltc_lipschitz_bound,
)
from .ssim import gaussian_window, ssim, ssim_map
from .time_constants import time_constants
from .wiring_graph import WiringGraph, wiring_graph

__all__ = [
    "count_parameters",
    "Activity",
    "PCAResult",
    "record_activity",
    "activity_pca",
    "neuron_output_correlation",
    "time_constants",
    "LipschitzEstimate",
    "LipschitzBound",
    "lipschitz_estimate",
    "ltc_lipschitz_bound",
    "input_sensitivity",
    "FeatureMap",
    "conv_feature_maps",
    "live_channels",
    "visual_backprop",
    "smoothgrad",
    "integrated_gradients",
    "AttentionRobustness",
    "attention_robustness",
    "gaussian_window",
    "ssim",
    "ssim_map",
    "WiringGraph",
    "wiring_graph",
]
