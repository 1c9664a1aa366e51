"""Names of the driving environments, their Gymnasium registration, and a direct factory.

- ``sim``: ``torchlnn/LaneKeeping-v0``, :class:`torchlnn.driving.env.LaneKeepingEnv`.
- ``carracing``: ``torchlnn/CarRacingLane-v0``,
  :class:`torchlnn.driving.carracing.CarRacingLaneEnv`.

``gymnasium.make`` wraps an environment in checkers; :func:`make_env` builds the bare class,
which the data collector and the evaluation harness use for speed and for the safety-driver
method ``recover()``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

__all__ = ["ENV_IDS", "register_environments", "make_env"]

ENV_IDS = {
    "sim": "torchlnn/LaneKeeping-v0",
    "carracing": "torchlnn/CarRacingLane-v0",
}
"""Gymnasium ids by short name."""

_ENTRY_POINTS = {
    "sim": "torchlnn.driving.env:LaneKeepingEnv",
    "carracing": "torchlnn.driving.carracing:CarRacingLaneEnv",
}


def register_environments() -> None:
    """Register the driving environments with Gymnasium; calling it again does nothing."""
    for name, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ENTRY_POINTS[name])


def make_env(name: str, render_mode: str | None = None, **overrides: Any) -> gym.Env:
    """Build the environment ``"sim"`` or ``"carracing"`` without Gymnasium's wrappers.

    ``overrides`` are configuration fields, for example ``speed=12.0`` or
    ``episode_steps=300``.
    """
    if name == "sim":
        from torchlnn.driving.env import LaneKeepingEnv

        return LaneKeepingEnv(render_mode=render_mode, **overrides)
    if name == "carracing":
        from torchlnn.driving.carracing import CarRacingLaneEnv

        return CarRacingLaneEnv(render_mode=render_mode, **overrides)
    raise ValueError(f"unknown driving environment {name!r}; expected one of {sorted(ENV_IDS)}")
