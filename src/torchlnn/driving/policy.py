"""The driving policy interface shared by experts, baselines and learned models.

A policy is any callable ``policy(frame, info) -> curvature``:

- ``frame``: the camera image as a float32 numpy array of shape ``(H, W, 3)``, RGB, with values
  ``uint8 / 255`` in ``[0, 1]``. After a Gaussian-noise perturbation values may lie outside
  ``[0, 1]``, because the noise is not clipped, following the noise protocol of the neural
  circuit policy paper (Lechner et al., Nature Machine Intelligence, 2020).
  :func:`frame_to_float` converts an environment observation.
- ``info``: a dictionary. A policy whose ``privileged`` attribute is true (an expert) receives
  the environment's full ``info``, with the ground truth and the road's centreline. Every other
  policy receives only :data:`PUBLIC_INFO_KEYS` (step, time and speed, which a car knows from
  its own clock and odometer), so a learned model can never read the ground truth.
- Return value: the curvature to follow in 1/m, positive to the left, as a float.

Optional parts: ``reset()`` is called once before each run (each seed) and should clear any
recurrent state. Within a run the policy is called once per frame in order and keeps its own
state from frame to frame; a safety-driver recovery (the car put back on the lane centre) does
not reset it, just as a model in a real car keeps running when the driver takes over.

A learned model is wrapped by a small object that converts the frame to a tensor (for example
with :func:`torchlnn.driving.dataset.frames_to_tensor`), runs one step with carried state, and
returns ``float(output)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "PUBLIC_INFO_KEYS",
    "Policy",
    "ConstantPolicy",
    "frame_to_float",
    "is_privileged",
    "policy_info",
    "reset_policy",
]

PUBLIC_INFO_KEYS = ("step", "time", "speed")
"""Entries of ``info`` that every policy may read."""


@runtime_checkable
class Policy(Protocol):
    """Structural type of a policy; plain functions ``f(frame, info)`` also qualify."""

    def __call__(self, frame: np.ndarray, info: Mapping[str, Any]) -> float: ...


def is_privileged(policy: Callable[..., Any]) -> bool:
    """Return whether ``policy`` declares that it needs the ground truth
    (``privileged = True``)."""
    return bool(getattr(policy, "privileged", False))


def policy_info(policy: Callable[..., Any], info: Mapping[str, Any]) -> dict[str, Any]:
    """Select the part of ``info`` that ``policy`` may see: everything for a privileged
    policy, the :data:`PUBLIC_INFO_KEYS` for any other."""
    if is_privileged(policy):
        return dict(info)
    return {key: info[key] for key in PUBLIC_INFO_KEYS if key in info}


def reset_policy(policy: Callable[..., Any]) -> None:
    """Call ``policy.reset()`` when the policy has one."""
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset()


def frame_to_float(frame: np.ndarray) -> np.ndarray:
    """Convert a uint8 ``(H, W, 3)`` observation to float32 in ``[0, 1]``."""
    if frame.dtype != np.uint8:
        raise TypeError(
            f"expected a uint8 camera frame as returned by the environment, got dtype "
            f"{frame.dtype}"
        )
    return frame.astype(np.float32) * np.float32(1.0 / 255.0)


class ConstantPolicy:
    """A baseline that always commands the same curvature (0 drives straight ahead)."""

    privileged = False

    def __init__(self, curvature: float = 0.0) -> None:
        self.curvature = float(curvature)

    def __repr__(self) -> str:
        return f"ConstantPolicy(curvature={self.curvature})"

    def reset(self) -> None:
        """Nothing to clear."""

    def __call__(self, frame: np.ndarray, info: Mapping[str, Any]) -> float:
        return self.curvature
