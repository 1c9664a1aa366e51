"""Kinematic bicycle model of a car driven at constant speed.

The state is the position of the rear-axle centre :math:`(x, y)`, the yaw :math:`\\psi` and the
front-wheel steering angle :math:`\\delta`. With wheelbase :math:`L` and speed :math:`v`,

.. math::

    \\dot x = v\\cos\\psi, \\qquad \\dot y = v\\sin\\psi, \\qquad
    \\dot\\psi = v\\,\\kappa, \\qquad \\kappa = \\tan(\\delta) / L,

where :math:`\\kappa` is the curvature of the path of the rear axle (positive turns left).
The controller commands a curvature :math:`\\kappa^*`. The steering actuator turns the wheels
towards :math:`\\delta^* = \\arctan(L\\,\\kappa^*)`, clipped to the steering limit, as a
first-order lag with time constant :math:`\\tau`:

.. math::

    \\delta_{k+1} = \\delta_k + (1 - e^{-\\Delta t/\\tau})\\,(\\delta^* - \\delta_k).

Within one step of :math:`\\Delta t` the curvature is held constant, so the car moves along an
exact circular arc (or straight line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["VehicleConfig", "KinematicBicycle"]


@dataclass(frozen=True)
class VehicleConfig:
    """Dimensions and actuator of a mid-size car."""

    wheelbase: float = 2.7
    """Distance between the axles, in metres."""
    width: float = 1.8
    """Body width, in metres."""
    length: float = 4.6
    """Body length, in metres; the body centre lies midway between the axles."""
    max_steer_deg: float = 35.0
    """Largest front-wheel angle, in degrees."""
    steer_time_constant: float = 0.1
    """Time constant of the steering actuator, in seconds; 0 makes it instantaneous."""
    speed: float = 15.0
    """Constant forward speed, in m/s."""
    dt: float = 1.0 / 30.0
    """Duration of one step, in seconds (30 Hz, the camera frame rate)."""

    def __post_init__(self) -> None:
        for name in ("wheelbase", "width", "length", "speed", "dt"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"VehicleConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if not 0 < self.max_steer_deg < 90:
            raise ValueError(
                f"VehicleConfig.max_steer_deg must lie in (0, 90), got {self.max_steer_deg}"
            )
        if self.steer_time_constant < 0:
            raise ValueError(
                f"VehicleConfig.steer_time_constant must be >= 0 seconds, got "
                f"{self.steer_time_constant}"
            )

    @property
    def max_curvature(self) -> float:
        """Curvature at full steering lock, in 1/m."""
        return math.tan(math.radians(self.max_steer_deg)) / self.wheelbase


class KinematicBicycle:
    """A car following the kinematic bicycle model (see the module docstring).

    The public state is ``x``, ``y`` (rear-axle centre, metres), ``yaw`` (radians) and
    ``steer`` (front-wheel angle, radians).
    """

    def __init__(self, config: VehicleConfig | None = None) -> None:
        self.config = config or VehicleConfig()
        self.x = 0.0
        self.y = 0.0
        self.yaw = 0.0
        self.steer = 0.0
        tau = self.config.steer_time_constant
        self._lag_gain = 1.0 if tau == 0 else 1.0 - math.exp(-self.config.dt / tau)

    def __repr__(self) -> str:
        return (
            f"KinematicBicycle(x={self.x:.2f}, y={self.y:.2f}, yaw={self.yaw:.3f}, "
            f"steer={self.steer:.3f})"
        )

    @property
    def curvature(self) -> float:
        """Curvature of the current path of the rear axle, in 1/m."""
        return math.tan(self.steer) / self.config.wheelbase

    def centre(self) -> tuple[float, float]:
        """Position of the body centre (midway between the axles), in metres."""
        half = 0.5 * self.config.wheelbase
        return self.x + half * math.cos(self.yaw), self.y + half * math.sin(self.yaw)

    def point_ahead(self, forward: float, left: float = 0.0) -> tuple[float, float]:
        """World position of a point ``forward`` metres ahead of and ``left`` metres left of
        the rear-axle centre (for example a camera mount)."""
        cos_y, sin_y = math.cos(self.yaw), math.sin(self.yaw)
        return (
            self.x + forward * cos_y - left * sin_y,
            self.y + forward * sin_y + left * cos_y,
        )

    def place(self, centre_x: float, centre_y: float, yaw: float, curvature: float = 0.0) -> None:
        """Put the body centre at ``(centre_x, centre_y)`` with the given yaw, and set the
        steering to follow ``curvature`` (1/m)."""
        half = 0.5 * self.config.wheelbase
        self.yaw = float(yaw)
        self.x = centre_x - half * math.cos(self.yaw)
        self.y = centre_y - half * math.sin(self.yaw)
        self.steer = self._steer_for(curvature)

    def _steer_for(self, curvature: float) -> float:
        limit = math.radians(self.config.max_steer_deg)
        return min(max(math.atan(self.config.wheelbase * curvature), -limit), limit)

    def step(self, curvature_command: float) -> None:
        """Advance by one step of ``config.dt`` seconds towards ``curvature_command`` (1/m)."""
        if not math.isfinite(curvature_command):
            raise ValueError(
                f"curvature command must be a finite number in 1/m, got {curvature_command}"
            )

        # Steering actuator: first-order lag towards the clipped target angle.
        target = self._steer_for(curvature_command)
        self.steer += self._lag_gain * (target - self.steer)

        # Exact motion along an arc of constant curvature over one step.
        distance = self.config.speed * self.config.dt
        kappa = self.curvature
        turn = kappa * distance
        if abs(turn) < 1e-9:
            self.x += distance * math.cos(self.yaw)
            self.y += distance * math.sin(self.yaw)
        else:
            self.x += (math.sin(self.yaw + turn) - math.sin(self.yaw)) / kappa
            self.y += (math.cos(self.yaw) - math.cos(self.yaw + turn)) / kappa
        self.yaw += turn
