"""Lane keeping from a front camera: simulator, expert, CarRacing adapter, data and evaluation.

Importing this package registers the Gymnasium environments ``torchlnn/LaneKeeping-v0``
(:class:`LaneKeepingEnv`) and ``torchlnn/CarRacingLane-v0`` (:class:`CarRacingLaneEnv`).
Its modules:

- :mod:`~torchlnn.driving.road`: road geometry and the generator of realistic roads.
- :mod:`~torchlnn.driving.vehicle`: kinematic bicycle model.
- :mod:`~torchlnn.driving.camera`, :mod:`~torchlnn.driving.render`: the front camera and the
  vectorised renderer.
- :mod:`~torchlnn.driving.env`: the simulator as a Gymnasium environment.
- :mod:`~torchlnn.driving.carracing`: CarRacing-v3 behind the same conventions.
- :mod:`~torchlnn.driving.policy`: the policy interface; :mod:`~torchlnn.driving.expert`: the
  expert driver.
- :mod:`~torchlnn.driving.perturbations`: noise, lighting, shadows, occlusions, camera offset.
- :mod:`~torchlnn.driving.evaluation`: the closed-loop harness and its metrics.
- :mod:`~torchlnn.driving.collect`, :mod:`~torchlnn.driving.dataset`: data collection and the
  PyTorch dataset of frame windows (imported on first use, as it needs torch).
"""

from __future__ import annotations

from typing import Any

from torchlnn.driving.camera import CameraConfig
from torchlnn.driving.carracing import CarRacingConfig, CarRacingLaneEnv
from torchlnn.driving.collect import CollectionConfig, collect, read_manifest
from torchlnn.driving.env import LaneKeepingEnv, SimConfig
from torchlnn.driving.evaluation import (
    DEFAULT_SEEDS,
    EvaluationResult,
    Trace,
    compute_metrics,
    evaluate,
)
from torchlnn.driving.expert import PurePursuitExpert
from torchlnn.driving.perturbations import (
    PERTURBATIONS,
    BrightnessContrast,
    CameraOffset,
    GaussianNoise,
    Occlusion,
    Perturbation,
    Shadow,
    parse_perturbation,
)
from torchlnn.driving.policy import (
    PUBLIC_INFO_KEYS,
    ConstantPolicy,
    Policy,
    frame_to_float,
    is_privileged,
    policy_info,
)
from torchlnn.driving.registry import ENV_IDS, make_env, register_environments
from torchlnn.driving.road import Centreline, RoadConfig, generate_road
from torchlnn.driving.vehicle import KinematicBicycle, VehicleConfig

register_environments()

__all__ = [
    "BrightnessContrast",
    "CameraConfig",
    "CameraOffset",
    "CarRacingConfig",
    "CarRacingLaneEnv",
    "Centreline",
    "CollectionConfig",
    "ConstantPolicy",
    "DEFAULT_SEEDS",
    "DrivingWindows",
    "ENV_IDS",
    "EvaluationResult",
    "GaussianNoise",
    "KinematicBicycle",
    "LaneKeepingEnv",
    "Occlusion",
    "PERTURBATIONS",
    "PUBLIC_INFO_KEYS",
    "Perturbation",
    "Policy",
    "PurePursuitExpert",
    "RoadConfig",
    "Shadow",
    "SimConfig",
    "Trace",
    "VehicleConfig",
    "collect",
    "compute_metrics",
    "evaluate",
    "frame_to_float",
    "frames_to_tensor",
    "generate_road",
    "is_privileged",
    "make_env",
    "parse_perturbation",
    "policy_info",
    "read_manifest",
    "register_environments",
    "split_episodes",
]

_TORCH_EXPORTS = {"DrivingWindows", "frames_to_tensor", "split_episodes"}


def __getattr__(name: str) -> Any:
    # The dataset needs torch; import it only when asked for.
    if name in _TORCH_EXPORTS:
        from torchlnn.driving import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'torchlnn.driving' has no attribute {name!r}")
