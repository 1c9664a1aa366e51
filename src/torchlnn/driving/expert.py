"""An expert driver that sees the road geometry: pure pursuit with curvature feed-forward.

The expert's output is the curvature of the path to follow, the label the neural circuit
policy paper trained its driver on (Lechner et al., Nature Machine Intelligence, 2020).

The command adds a feed-forward term, the road curvature a little ahead, to a pure-pursuit
correction computed in the road's own frame. With lateral offset :math:`e_y` and heading error
:math:`e_\\psi` of the body centre, speed :math:`v` and look-ahead distance
:math:`\\ell = \\max(\\ell_{min}, T v)`, the pursued point lies on the lane centre
:math:`\\ell` metres ahead, at bearing :math:`\\alpha` from the car's axis:

.. math::

    \\alpha = \\operatorname{atan2}(-e_y, \\ell) - e_\\psi, \\qquad
    \\kappa^* = \\kappa_{road}(s + v\\,t_p) + \\frac{2\\sin\\alpha}{\\sqrt{\\ell^2 + e_y^2}} .

The preview time :math:`t_p` offsets the lag of the steering actuator. For small errors the
correction is :math:`-2 e_y/\\ell^2 - 2 e_\\psi/\\ell`, so the lateral error decays like a
second-order system with natural frequency :math:`\\sqrt2\\,v/\\ell` and damping ratio
:math:`1/\\sqrt2`, whatever the speed.

On a curve of curvature :math:`\\kappa`, a car whose rear axle follows the lane centre has its
body centre :math:`L^2\\kappa/8` outside the curve and yawed :math:`\\arctan(\\kappa L/2)` towards
the outside (wheelbase :math:`L`). The expert subtracts these steady-state errors first, so it
does not fight the geometry of its own car.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["PurePursuitExpert"]


class PurePursuitExpert:
    """Pure pursuit with curvature feed-forward on the privileged road geometry.

    Arguments:
        lookahead_time: look-ahead distance per unit of speed, in seconds.
        min_lookahead: shortest look-ahead distance, in metres.
        preview_time: how far ahead, in seconds of travel, the feed-forward reads the road
            curvature; about the steering time constant.
        max_curvature: bound on the command, in 1/m.

    Reads from ``info``: ``lateral_offset``, ``heading_error``, ``speed``, ``s``,
    ``wheelbase`` and ``centreline``; both environments of :mod:`torchlnn.driving` provide
    them.
    """

    privileged = True

    def __init__(
        self,
        lookahead_time: float = 0.8,
        min_lookahead: float = 6.0,
        preview_time: float = 0.1,
        max_curvature: float = 0.2,
    ) -> None:
        if lookahead_time <= 0 or min_lookahead <= 0:
            raise ValueError(
                f"lookahead_time and min_lookahead must be positive, got {lookahead_time} "
                f"and {min_lookahead}"
            )
        if preview_time < 0 or max_curvature <= 0:
            raise ValueError(
                f"preview_time must be >= 0 and max_curvature > 0, got {preview_time} and "
                f"{max_curvature}"
            )
        self.lookahead_time = lookahead_time
        self.min_lookahead = min_lookahead
        self.preview_time = preview_time
        self.max_curvature = max_curvature

    def __repr__(self) -> str:
        return (
            f"PurePursuitExpert(lookahead_time={self.lookahead_time}, "
            f"min_lookahead={self.min_lookahead}, preview_time={self.preview_time})"
        )

    def reset(self) -> None:
        """Do nothing: the expert has no state."""

    def __call__(self, frame: np.ndarray | None, info: Mapping[str, Any]) -> float:
        """Return the curvature command in 1/m; ``frame`` is ignored."""
        missing = [key for key in ("lateral_offset", "heading_error", "speed", "s",
                                   "wheelbase", "centreline") if key not in info]
        if missing:
            raise KeyError(
                f"PurePursuitExpert needs the privileged info entries {missing}; call it with "
                f"the environment's full info (the harness does so for privileged policies)"
            )
        speed = float(info["speed"])
        preview_s = float(info["s"]) + speed * self.preview_time
        road_curvature = float(info["centreline"].curvature_at(preview_s))
        return self.command(
            float(info["lateral_offset"]),
            float(info["heading_error"]),
            speed,
            road_curvature,
            float(info["wheelbase"]),
        )

    def command(
        self,
        lateral_offset: float,
        heading_error: float,
        speed: float,
        road_curvature: float,
        wheelbase: float,
    ) -> float:
        """Compute the control law of the module docstring from the errors of the body
        centre."""
        # Remove the steady-state errors of a car whose rear axle tracks the lane centre.
        lateral_offset += wheelbase * wheelbase * road_curvature / 8.0
        heading_error += math.atan(0.5 * wheelbase * road_curvature)

        # Pure pursuit of the lane centre, in the road frame.
        lookahead = max(self.min_lookahead, self.lookahead_time * speed)
        bearing = math.atan2(-lateral_offset, lookahead) - heading_error
        correction = 2.0 * math.sin(bearing) / math.hypot(lookahead, lateral_offset)

        curvature = road_curvature + correction
        return float(min(max(curvature, -self.max_curvature), self.max_curvature))
