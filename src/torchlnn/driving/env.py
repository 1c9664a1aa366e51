"""The front-camera lane-keeping environment ``torchlnn/LaneKeeping-v0``.

A car drives at constant speed on a randomly generated two-lane road (see
:mod:`torchlnn.driving.road`), steered by a curvature command, and sees the road through a
front camera (see :mod:`torchlnn.driving.render`). Every episode draws a new road, roadside
scenery and lighting from the seed passed to :meth:`LaneKeepingEnv.reset`.

Spaces and conventions:

- Observation: the camera frame, ``uint8`` RGB of shape ``(H, W, 3)`` (78 x 200 by default).
  It is the only thing a learned driver sees.
- Action: ``(1,)`` float32 curvature command in 1/m, positive turns left, bounded by the
  steering lock (about 0.26 1/m for the default car).
- Reward: :math:`1 - (d / (w/2))^2` per step for a lateral offset :math:`d` in a lane of width
  :math:`w`.
- Termination: when the body centre leaves the lane (``|d| > departure_offset``), unless
  ``terminate_on_departure`` is off. Truncation: after ``episode_steps`` steps.
- ``info``: ground truth for experts and metrics, never for a learned policy's input:
  ``lateral_offset`` (m, positive left of the lane centre, at the body centre),
  ``heading_error`` (rad, car yaw minus road heading), ``road_curvature`` (1/m at the car),
  ``curvature_ahead`` (1/m at ``preview_distances`` metres ahead), ``s`` and ``progress`` (arc
  length, m), ``x``, ``y``, ``yaw`` (pose of the body centre), ``speed`` (m/s),
  ``steering_angle`` (rad), ``path_curvature`` (1/m, executed), ``in_lane``, ``departure``,
  ``lane_width`` and ``wheelbase`` (m), ``step``, ``time`` (s) and ``centreline`` (the road's
  :class:`~torchlnn.driving.road.Centreline`).

Reset options: ``lateral_offset`` (m), ``heading_error`` (rad) and ``start_s`` (m) place the
car away from the lane centre, which is how recovery data is collected.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from torchlnn.driving.camera import CameraConfig
from torchlnn.driving.render import Appearance, RoadRenderer, Scenery
from torchlnn.driving.road import Centreline, RoadConfig, generate_road
from torchlnn.driving.vehicle import KinematicBicycle, VehicleConfig

__all__ = ["SimConfig", "LaneKeepingEnv"]


@dataclass(frozen=True)
class SimConfig:
    """Configuration of :class:`LaneKeepingEnv`. Build variants with :meth:`replace`."""

    road: RoadConfig = field(default_factory=RoadConfig)
    """Road generation."""
    vehicle: VehicleConfig = field(default_factory=VehicleConfig)
    """Car dimensions, speed and step duration."""
    camera: CameraConfig = field(default_factory=CameraConfig)
    """Front camera."""
    episode_steps: int = 900
    """Steps before truncation (30 s at 30 Hz)."""
    terminate_on_departure: bool = True
    """End the episode when the car leaves its lane."""
    departure_offset: float | None = None
    """Lateral offset of the body centre, in metres, beyond which the car has left its lane.
    ``None`` means half the lane width, where the centre crosses a lane line."""
    preview_distances: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 40.0)
    """Distances ahead, in metres, at which ``info["curvature_ahead"]`` samples the road."""
    start_s: float = 10.0
    """Default arc length of the body centre at reset, in metres."""
    texture_seed: int = 0
    """Seed of the road texture, shared by all episodes."""

    def __post_init__(self) -> None:
        if self.episode_steps < 1:
            raise ValueError(f"SimConfig.episode_steps must be >= 1, got {self.episode_steps}")
        if self.departure_offset is not None and self.departure_offset <= 0:
            raise ValueError(
                f"SimConfig.departure_offset must be positive metres or None, got "
                f"{self.departure_offset}"
            )

    @property
    def lane_departure_offset(self) -> float:
        """The departure threshold in metres, with ``None`` resolved."""
        if self.departure_offset is None:
            return 0.5 * self.road.lane_width
        return self.departure_offset

    def replace(self, **changes: Any) -> SimConfig:
        """Return a copy with fields changed. Fields of the nested ``road``, ``vehicle`` and
        ``camera`` configs may be named directly, e.g. ``replace(speed=12.0, image_width=160)``.
        """
        own = {f.name for f in dataclasses.fields(self)}
        nested: dict[str, dict[str, Any]] = {"road": {}, "vehicle": {}, "camera": {}}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            if key in own:
                top[key] = value
                continue
            for name in nested:
                if key in {f.name for f in dataclasses.fields(getattr(self, name))}:
                    nested[name][key] = value
                    break
            else:
                valid = sorted(own | {
                    f.name for name in nested for f in dataclasses.fields(getattr(self, name))
                })
                raise ValueError(f"unknown SimConfig field {key!r}; valid fields: {valid}")
        for name, values in nested.items():
            if values:
                top[name] = dataclasses.replace(top.get(name, getattr(self, name)), **values)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dictionary, for JSON manifests and reports."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        values = dict(values)
        nested = {"road": RoadConfig, "vehicle": VehicleConfig, "camera": CameraConfig}
        for name, kind in nested.items():
            if name in values:
                fields = dict(values[name])
                for key, value in fields.items():
                    if isinstance(value, list):
                        fields[key] = tuple(value)
                values[name] = kind(**fields)
        if "preview_distances" in values:
            values["preview_distances"] = tuple(values["preview_distances"])
        return cls(**values)

    def road_length(self) -> float:
        """Length of road generated per episode: the drive plus what the camera sees."""
        drive = self.vehicle.speed * self.vehicle.dt * self.episode_steps
        return self.start_s + drive + 1.2 * self.camera.view_distance + 60.0


class LaneKeepingEnv(gym.Env):
    """Front-camera lane keeping on generated roads (see the module docstring).

    Arguments:
        config: the :class:`SimConfig`; ``None`` uses the defaults.
        render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns the camera frame).
        **overrides: fields of :class:`SimConfig` or of its nested configs to change, as
            accepted by :meth:`SimConfig.replace`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self, config: SimConfig | None = None, render_mode: str | None = None, **overrides: Any
    ) -> None:
        super().__init__()
        config = config or SimConfig()
        if overrides:
            config = config.replace(**overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or 'rgb_array', got {render_mode!r}"
            )
        self.config = config
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(1.0 / config.vehicle.dt)}

        camera = config.camera
        self.observation_space = spaces.Box(
            0, 255, (camera.image_height, camera.image_width, 3), dtype=np.uint8
        )
        limit = np.float32(config.vehicle.max_curvature)
        self.action_space = spaces.Box(-limit, limit, (1,), dtype=np.float32)

        self.renderer = RoadRenderer(camera, texture_seed=config.texture_seed)
        self.vehicle = KinematicBicycle(config.vehicle)
        self.camera_left = camera.mount_left
        self.camera_yaw = math.radians(camera.mount_yaw_deg)
        self.centreline: Centreline | None = None
        self.scenery: Scenery | None = None
        self._frame: np.ndarray | None = None
        self._s = 0.0
        self._start_s = 0.0
        self._steps = 0

    # Properties shared with the CarRacing adapter --------------------------------------

    @property
    def dt(self) -> float:
        """Duration of one step, in seconds."""
        return self.config.vehicle.dt

    @property
    def nominal_speed(self) -> float:
        """Driving speed, in m/s."""
        return self.config.vehicle.speed

    @property
    def lane_width(self) -> float:
        """Lane width, in metres."""
        return self.config.road.lane_width

    @property
    def vehicle_width(self) -> float:
        """Car width, in metres."""
        return self.config.vehicle.width

    @property
    def departure_offset(self) -> float:
        """Lateral offset of the body centre beyond which the car has left its lane, metres."""
        return self.config.lane_departure_offset

    @property
    def road_lines(self) -> tuple[float, ...]:
        """Lateral positions of the painted lines relative to the lane centre, in metres."""
        half = 0.5 * self.config.road.lane_width
        return (-half, half, 3.0 * half)

    # Gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a new road and scenery and place the car on it.

        Options (all optional): ``lateral_offset`` in metres (positive left),
        ``heading_error`` in radians (positive left) and ``start_s`` in metres.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"lateral_offset", "heading_error", "start_s"}
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; expected lateral_offset, "
                f"heading_error or start_s"
            )

        # Road and scenery come from the episode's generator, so a seed fixes both.
        rng = self.np_random
        self.centreline, _ = generate_road(self.config.road_length(), rng, self.config.road)
        appearance = Appearance.sample(rng, self.config.road.lane_width)
        self.scenery = Scenery.generate(self.centreline, rng, appearance)
        self.renderer.set_scene(self.centreline, self.scenery)

        start_s = float(options.get("start_s", self.config.start_s))
        margin = 1.2 * self.config.camera.view_distance
        if not 0.0 <= start_s <= self.centreline.length - margin:
            raise ValueError(
                f"start_s must lie in [0, {self.centreline.length - margin:.0f}] m, got "
                f"{start_s}"
            )
        self._place(
            start_s,
            float(options.get("lateral_offset", 0.0)),
            float(options.get("heading_error", 0.0)),
        )
        self._start_s = self._s
        self._steps = 0
        self._frame = self._render_frame()
        return self._frame.copy(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a curvature command (1/m) for one step of ``config.vehicle.dt`` seconds."""
        if self.centreline is None:
            raise RuntimeError("LaneKeepingEnv.step called before reset; call reset() first")
        command = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        self.vehicle.step(command)
        self._steps += 1
        self._update_projection()
        self._frame = self._render_frame()
        info = self._info()

        offset = info["lateral_offset"]
        reward = 1.0 - (offset / (0.5 * self.config.road.lane_width)) ** 2
        terminated = bool(info["departure"] and self.config.terminate_on_departure)
        end_of_road = self.centreline.length - 1.2 * self.config.camera.view_distance
        truncated = self._steps >= self.config.episode_steps or self._s >= end_of_road
        return self._frame.copy(), float(reward), terminated, bool(truncated), info

    def render(self) -> np.ndarray | None:
        """Return a copy of the current camera frame when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            gym.logger.warn(
                "LaneKeepingEnv.render() called without a render_mode; create the "
                "environment with render_mode='rgb_array'"
            )
            return None
        if self._frame is None:
            raise RuntimeError("LaneKeepingEnv.render called before reset; call reset() first")
        return self._frame.copy()

    # Safety driver and camera mount ----------------------------------------------------

    def recover(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the car back on the lane centre, aligned with the road, as a safety driver
        would after a departure. Time and the step count carry on.

        Returns:
            The new observation and info.
        """
        if self.centreline is None:
            raise RuntimeError("LaneKeepingEnv.recover called before reset; call reset() first")
        self._place(self._s, 0.0, 0.0)
        self._frame = self._render_frame()
        return self._frame.copy(), self._info()

    def set_camera_offset(self, lateral: float = 0.0, yaw: float = 0.0) -> None:
        """Move the camera ``lateral`` metres left of its mount and turn it by ``yaw``
        radians to the left. Both 0 restore the configured mount."""
        self.camera_left = self.config.camera.mount_left + float(lateral)
        self.camera_yaw = math.radians(self.config.camera.mount_yaw_deg) + float(yaw)
        if self.centreline is not None:
            self._frame = self._render_frame()

    # Internals -------------------------------------------------------------------------

    def _place(self, s: float, lateral: float, heading_error: float) -> None:
        """Put the body centre ``lateral`` metres left of the lane centre at arc length ``s``."""
        x, y, heading = self.centreline.offset_point(s, lateral)
        curvature = float(self.centreline.curvature_at(s))
        self.vehicle.place(x, y, heading + heading_error, curvature)
        self._s = s
        self._update_projection()

    def _update_projection(self) -> None:
        x, y = self.vehicle.centre()
        self._s, self._offset, self._road_heading = self.centreline.project(x, y, self._s)

    def _render_frame(self) -> np.ndarray:
        camera = self.config.camera
        x, y = self.vehicle.point_ahead(camera.mount_forward, self.camera_left)
        yaw = self.vehicle.yaw + self.camera_yaw
        # The renderer only needs s to choose which part of the road to look at.
        s_camera = self._s + camera.mount_forward - 0.5 * self.config.vehicle.wheelbase
        return self.renderer.render(x, y, yaw, s_camera)

    def _info(self) -> dict[str, Any]:
        config = self.config
        vehicle = self.vehicle
        offset = float(self._offset)
        heading_error = math.remainder(vehicle.yaw - self._road_heading, 2.0 * math.pi)
        ahead = self.centreline.curvature_at(self._s + np.asarray(config.preview_distances))
        lane_width = config.road.lane_width
        x, y = vehicle.centre()
        return {
            "step": self._steps,
            "time": self._steps * config.vehicle.dt,
            "speed": config.vehicle.speed,
            "s": float(self._s),
            "progress": float(self._s - self._start_s),
            "x": x,
            "y": y,
            "yaw": vehicle.yaw,
            "lateral_offset": offset,
            "heading_error": heading_error,
            "road_curvature": float(self.centreline.curvature_at(self._s)),
            "curvature_ahead": np.asarray(ahead, dtype=np.float64),
            "steering_angle": vehicle.steer,
            "path_curvature": vehicle.curvature,
            "in_lane": abs(offset) + 0.5 * config.vehicle.width <= 0.5 * lane_width,
            "departure": abs(offset) > config.lane_departure_offset,
            "lane_width": lane_width,
            "wheelbase": config.vehicle.wheelbase,
            "centreline": self.centreline,
        }
