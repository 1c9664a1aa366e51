"""Gymnasium's CarRacing-v3 behind the lane-keeping conventions, ``torchlnn/CarRacingLane-v0``.

:class:`CarRacingLaneEnv` wraps ``gymnasium.envs.box2d.car_racing.CarRacing`` (Box2D physics
with tyre slip, 50 steps per second) so that it looks like
:class:`~torchlnn.driving.env.LaneKeepingEnv` to policies, the data collector and the
evaluation harness:

- Observation: ``uint8`` RGB ``(H, W, 3)``, 78 x 200 by default: the area ahead of the car in
  CarRacing's top-down view, which turns with the car so that it always points up. The image
  is cut from CarRacing's full-resolution surface. The indicator bar at the bottom of the
  screen shows speed, wheel speeds, steering and yaw rate, which would leak the label, so the
  cut ends above it.
- Action: ``(1,)`` float32 curvature command in 1/m, positive turns left. It is turned into a
  front-wheel angle :math:`\\arctan(L\\kappa)` (wheelbase :math:`L` = 3.24 m) for CarRacing's
  steering input; a proportional controller works gas and brake to hold ``target_speed``.
- ``info``: the same ground truth as the simulator (lateral offset, heading error, curvature
  ahead, pose, progress, ``centreline``...), computed from the track's tile centres. The lane
  is the whole track, 13.3 m wide; a departure is the car's centre leaving the asphalt.

CarRacing renders its own frame at every step, so this environment runs at about 150 steps
per second of CPU time on one core (``benchmarks/sim_speed.py --carracing``), far slower
than the simulator. Each reset drives the car for
``warmup_steps`` steps with the built-in expert so that it starts at speed and after the
one-second zoom animation of CarRacing's camera.

NOTE: the adapter reads the car, track and drawing surface through the attributes ``car``,
``track`` and ``surf`` of CarRacing as of Gymnasium 1.x; it is tested with Gymnasium 1.4.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from torchlnn.driving.expert import PurePursuitExpert
from torchlnn.driving.road import Centreline

__all__ = ["CarRacingConfig", "CarRacingLaneEnv"]

# CarRacing geometry (gymnasium/envs/box2d/car_racing.py and car_dynamics.py).
_PIXELS_PER_METRE = 2.7 * 6.0  # ZOOM * SCALE once the zoom animation is over
_SURFACE_SIZE = (1000, 800)  # WINDOW_W, WINDOW_H
_CAR_PIXEL = (500, 600)  # the car's centre on the surface: (W / 2, 3 H / 4)
_INDICATOR_TOP = 800 - 5 * 800 / 40  # first row of the indicator bar
_TRACK_HALF_WIDTH = 40.0 / 6.0  # TRACK_WIDTH
_WHEELBASE = (80 + 82) * 0.02  # front and rear wheel positions times SIZE
_CAR_WIDTH = 2 * (55 + 14) * 0.02  # outer edges of the wheels
_MAX_WHEEL_ANGLE = 0.4  # joint limit of the front wheels, radians
_FPS = 50


@dataclass(frozen=True)
class CarRacingConfig:
    """Configuration of :class:`CarRacingLaneEnv`."""

    image_height: int = 78
    """Frame height in pixels."""
    image_width: int = 200
    """Frame width in pixels."""
    view_ahead: float = 25.0
    """Distance ahead of the car's centre shown in the frame, in metres."""
    view_width: float = 40.0
    """Width of the ground shown in the frame, in metres."""
    target_speed: float = 8.0
    """Speed held by the gas and brake controller, in m/s (CarRacing's bends are tight)."""
    episode_steps: int = 1000
    """Steps before truncation (20 s at 50 Hz)."""
    warmup_steps: int = 60
    """Steps driven by the expert at each reset, at least 50 (one second of zoom animation)."""
    terminate_on_departure: bool = True
    """End the episode when the car's centre leaves the track."""
    departure_offset: float | None = None
    """Offset of the car's centre from the track centre that counts as a departure, in
    metres; ``None`` means half the track width."""
    preview_distances: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 40.0)
    """Distances ahead, in metres, at which ``info["curvature_ahead"]`` samples the track."""
    domain_randomize: bool = False
    """Pass-through of CarRacing's colour randomisation."""
    random_start: bool = True
    """Start each episode at a point of the track drawn from the seed, instead of at the
    start line (every CarRacing track begins at the same place)."""

    def __post_init__(self) -> None:
        if self.image_height < 8 or self.image_width < 8:
            raise ValueError(
                f"image must be at least 8 x 8 pixels, got {self.image_height} x "
                f"{self.image_width}"
            )
        if self.warmup_steps < 50:
            raise ValueError(
                f"CarRacingConfig.warmup_steps must be >= 50 so that CarRacing's zoom "
                f"animation is over, got {self.warmup_steps}"
            )
        if self.view_ahead <= 0 or self.view_width <= 0 or self.target_speed <= 0:
            raise ValueError(
                f"view_ahead, view_width and target_speed must be positive, got "
                f"{self.view_ahead}, {self.view_width} and {self.target_speed}"
            )
        if self.view_width * _PIXELS_PER_METRE > _SURFACE_SIZE[0]:
            raise ValueError(
                f"view_width={self.view_width} m is wider than CarRacing's screen "
                f"({_SURFACE_SIZE[0] / _PIXELS_PER_METRE:.0f} m)"
            )
        if self.view_ahead * _PIXELS_PER_METRE > _CAR_PIXEL[1]:
            raise ValueError(
                f"view_ahead={self.view_ahead} m reaches beyond the top of CarRacing's "
                f"screen ({_CAR_PIXEL[1] / _PIXELS_PER_METRE:.0f} m)"
            )

    def replace(self, **changes: Any) -> CarRacingConfig:
        """Return a copy with fields changed."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - valid
        if unknown:
            raise ValueError(
                f"unknown CarRacingConfig fields {sorted(unknown)}; valid fields: {sorted(valid)}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary, for JSON manifests."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CarRacingConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        values = dict(values)
        if "preview_distances" in values:
            values["preview_distances"] = tuple(values["preview_distances"])
        return cls(**values)


class CarRacingLaneEnv(gym.Env):
    """CarRacing-v3 with a curvature action and a cropped, indicator-free view (see the
    module docstring).

    Arguments:
        config: the :class:`CarRacingConfig`; ``None`` uses the defaults.
        render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns the frame).
        **overrides: fields of :class:`CarRacingConfig` to change.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": _FPS}

    def __init__(
        self,
        config: CarRacingConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        # CarRacing draws with pygame even when no window is shown; without a video driver
        # pygame may crash on a machine with no display. An explicit choice is kept.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        from gymnasium.envs.box2d.car_racing import CarRacing

        config = config or CarRacingConfig()
        if overrides:
            config = config.replace(**overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        self.observation_space = spaces.Box(
            0, 255, (config.image_height, config.image_width, 3), dtype=np.uint8
        )
        limit = np.float32(math.tan(_MAX_WHEEL_ANGLE) / _WHEELBASE)
        self.action_space = spaces.Box(-limit, limit, (1,), dtype=np.float32)

        self.inner = CarRacing(render_mode=None, domain_randomize=config.domain_randomize)
        self.expert = PurePursuitExpert()
        self.camera_left = 0.0
        self.centreline: Centreline | None = None
        self._frame: np.ndarray | None = None
        self._s = 0.0
        self._progress = 0.0
        self._steps = 0

    # Properties shared with the simulator ---------------------------------------------

    @property
    def dt(self) -> float:
        """Duration of one step, in seconds."""
        return 1.0 / _FPS

    @property
    def nominal_speed(self) -> float:
        """Target speed, in m/s."""
        return self.config.target_speed

    @property
    def lane_width(self) -> float:
        """Width of the track, in metres."""
        return 2.0 * _TRACK_HALF_WIDTH

    @property
    def vehicle_width(self) -> float:
        """Width of the car over its wheels, in metres."""
        return _CAR_WIDTH

    @property
    def departure_offset(self) -> float:
        """Offset of the car's centre beyond which it has left the track, in metres."""
        if self.config.departure_offset is None:
            return _TRACK_HALF_WIDTH
        return self.config.departure_offset

    @property
    def road_lines(self) -> tuple[float, ...]:
        """Lateral positions of the track edges relative to its centre, in metres."""
        return (-_TRACK_HALF_WIDTH, _TRACK_HALF_WIDTH)

    # Gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Build the track of ``seed`` (the same track as CarRacing-v3 with that seed), drive
        the warm-up, then move the car to the episode's start point (see ``random_start``),
        offset by ``lateral_offset`` (m) and ``heading_error`` (rad) from ``options``."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"lateral_offset", "heading_error"}
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; expected lateral_offset or "
                f"heading_error"
            )
        self.inner.reset(seed=seed)
        track = np.array([(x, y) for _, _, x, y in self.inner.track])
        self.centreline = Centreline.from_points(
            track[:, 0], track[:, 1], step=0.5, closed=True, smoothing=6.0
        )
        self._s = self.centreline.project(*self._pose()[:2])[0]

        # Warm-up: the expert drives until the car is at speed and the zoom has settled.
        for _ in range(self.config.warmup_steps):
            command = self.expert(None, self._info())
            self._advance(command)

        # Move to the episode's start point and offsets, rolling at the target speed.
        start = self._s
        if self.config.random_start:
            start = float(self.np_random.uniform(0.0, self.centreline.length))
        lateral = float(options.get("lateral_offset", 0.0))
        heading = float(options.get("heading_error", 0.0))
        if self.config.random_start or lateral or heading:
            self._teleport(start, lateral, heading)
            self._advance(float(self.centreline.curvature_at(self._s)))
        self._progress = 0.0
        self._steps = 0
        self._frame = self._capture()
        return self._frame.copy(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a curvature command (1/m) for one CarRacing step of 1/50 s."""
        if self.centreline is None:
            raise RuntimeError("CarRacingLaneEnv.step called before reset; call reset() first")
        command = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not math.isfinite(command):
            raise ValueError(f"curvature command must be a finite number in 1/m, got {command}")
        self._advance(command)
        self._steps += 1
        self._frame = self._capture()
        info = self._info()

        offset = info["lateral_offset"]
        reward = 1.0 - (offset / _TRACK_HALF_WIDTH) ** 2
        terminated = bool(info["departure"] and self.config.terminate_on_departure)
        truncated = self._steps >= self.config.episode_steps
        return self._frame.copy(), float(reward), terminated, bool(truncated), info

    def render(self) -> np.ndarray | None:
        """Return a copy of the current frame when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            gym.logger.warn(
                "CarRacingLaneEnv.render() called without a render_mode; create the "
                "environment with render_mode='rgb_array'"
            )
            return None
        if self._frame is None:
            raise RuntimeError("CarRacingLaneEnv.render called before reset; call reset() first")
        return self._frame.copy()

    def close(self) -> None:
        """Close CarRacing (and its pygame display, if any)."""
        self.inner.close()

    # Safety driver and camera ---------------------------------------------------------

    def recover(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the car back on the track centre, aligned with it and at the target speed, as
        a safety driver would after a departure. Returns the new observation and info."""
        if self.centreline is None:
            raise RuntimeError("CarRacingLaneEnv.recover called before reset; call reset() first")
        self._teleport(self._s, 0.0, 0.0)
        self._advance(float(self.centreline.curvature_at(self._s)))
        self._frame = self._capture()
        return self._frame.copy(), self._info()

    def set_camera_offset(self, lateral: float = 0.0, yaw: float = 0.0) -> None:
        """Shift the view ``lateral`` metres to the left of the car's axis. A yaw offset is
        not supported by the top-down view and must be 0."""
        if yaw != 0.0:
            raise ValueError(
                f"CarRacingLaneEnv supports a lateral camera offset only, got yaw={yaw}; "
                f"use CameraOffset with yaw_deg=0"
            )
        self.camera_left = float(lateral)
        if self.centreline is not None:
            self._frame = self._capture()

    # Internals -------------------------------------------------------------------------

    def _pose(self) -> tuple[float, float, float, float]:
        """``(x, y, yaw, speed)`` of the car's hull; CarRacing's car points along local +y."""
        hull = self.inner.car.hull
        x, y = hull.position
        velocity = hull.linearVelocity
        return float(x), float(y), float(hull.angle) + 0.5 * math.pi, float(
            math.hypot(velocity[0], velocity[1]))

    def _path_curvature(self) -> float:
        """Curvature of the car's current path: yaw rate over speed."""
        _, _, _, speed = self._pose()
        return float(self.inner.car.hull.angularVelocity) / max(speed, 0.5)

    def _advance(self, curvature: float) -> None:
        """Advance CarRacing by one step, steering for ``curvature`` and holding the target
        speed with gas and brake."""
        wheel_angle = math.atan(_WHEELBASE * curvature)
        speed = self._pose()[3]
        error = self.config.target_speed - speed
        gas = min(max(0.1 * error, 0.0), 1.0)
        brake = min(max(-0.1 * (error + 1.0), 0.0), 0.8)
        # CarRacing's input is the target wheel angle in radians with the sign flipped:
        # a negative action[0] turns the wheels left.
        steer = min(max(-wheel_angle, -1.0), 1.0)
        self.inner.step(np.array([steer, gas, brake], dtype=np.float32))

        # Progress along the loop, unwrapped.
        x, y, _, _ = self._pose()
        previous = self._s
        self._s, _, _ = self.centreline.project(x, y, previous)
        length = self.centreline.length
        self._progress += (self._s - previous + 0.5 * length) % length - 0.5 * length

    def _teleport(self, s: float, lateral: float, heading_error: float) -> None:
        """Rebuild the car at arc length ``s``, ``lateral`` metres left of the centre, rolling
        at the target speed."""
        from gymnasium.envs.box2d.car_dynamics import Car

        x, y, heading = self.centreline.offset_point(s, lateral)
        yaw = heading + heading_error
        self.inner.car.destroy()
        car = Car(self.inner.world, yaw - 0.5 * math.pi, x, y)
        speed = self.config.target_speed
        velocity = (speed * math.cos(yaw), speed * math.sin(yaw))
        car.hull.linearVelocity = velocity
        for wheel in car.wheels:
            wheel.linearVelocity = velocity
            wheel.omega = speed / wheel.wheel_rad
        self.inner.car = car
        self._s = s

    def _capture(self) -> np.ndarray:
        """Cut the area ahead of the car from CarRacing's surface and resize it."""
        import pygame

        config = self.config
        scale = _PIXELS_PER_METRE
        width = int(round(config.view_width * scale))
        height = int(round(config.view_ahead * scale))
        left = int(round(_CAR_PIXEL[0] - 0.5 * width - self.camera_left * scale))
        top = _CAR_PIXEL[1] - height
        left = min(max(left, 0), _SURFACE_SIZE[0] - width)
        region = self.inner.surf.subsurface(pygame.Rect(left, top, width, height))
        small = pygame.transform.smoothscale(region, (config.image_width, config.image_height))
        return np.ascontiguousarray(pygame.surfarray.array3d(small).transpose(1, 0, 2))

    def _info(self) -> dict[str, Any]:
        x, y, yaw, speed = self._pose()
        s, offset, road_heading = self.centreline.project(x, y, self._s)
        self._s = s
        heading_error = math.remainder(yaw - road_heading, 2.0 * math.pi)
        ahead = self.centreline.curvature_at(s + np.asarray(self.config.preview_distances))
        wheel_angle = float(self.inner.car.wheels[0].joint.angle)
        return {
            "step": self._steps,
            "time": self._steps * self.dt,
            "speed": speed,
            "s": s,
            "progress": float(self._progress),
            "x": x,
            "y": y,
            "yaw": yaw,
            "lateral_offset": float(offset),
            "heading_error": heading_error,
            "road_curvature": float(self.centreline.curvature_at(s)),
            "curvature_ahead": np.asarray(ahead, dtype=np.float64),
            "steering_angle": wheel_angle,
            "path_curvature": self._path_curvature(),
            "in_lane": abs(offset) + 0.5 * _CAR_WIDTH <= _TRACK_HALF_WIDTH,
            "departure": abs(offset) > self.departure_offset,
            "lane_width": self.lane_width,
            "wheelbase": _WHEELBASE,
            "centreline": self.centreline,
        }
