"""A pinhole camera mounted on the car, looking at a flat ground plane.

The camera sits ``mount_height`` metres above the ground, pitched down by :math:`\\theta`,
with square pixels and focal length :math:`f = (W/2) / \\tan(\\mathrm{fov}/2)` in pixels. The
ray through the centre of pixel ``(v, u)`` has image coordinates
:math:`x_c = (u + \\tfrac12 - c_u)/f` (right) and :math:`y_c = (v + \\tfrac12 - c_v)/f` (down).
In a level frame (forward, left, up) its direction is

.. math::

    r = (\\cos\\theta - y_c\\sin\\theta,\\; -x_c,\\; -\\sin\\theta - y_c\\cos\\theta),

and it meets the ground at :math:`t = h / (\\sin\\theta + y_c\\cos\\theta)`, the point

.. math::

    F = t\\,(\\cos\\theta - y_c\\sin\\theta), \\qquad Y = -t\\,x_c .

Because the camera has no roll, every pixel of an image row sees the ground at the same
forward distance :math:`F`; only the lateral position :math:`Y` changes along the row. The
renderer relies on this: it finds the road once per row, then offsets each pixel laterally.
All of these quantities depend only on the camera, so :class:`GroundRays` computes them once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CameraConfig", "GroundRays"]


@dataclass(frozen=True)
class CameraConfig:
    """Intrinsics and mounting of the front camera. The defaults give the 78 x 200 frames of
    the neural circuit policy paper (Lechner et al., Nature Machine Intelligence, 2020)."""

    image_height: int = 78
    """Frame height in pixels."""
    image_width: int = 200
    """Frame width in pixels."""
    horizontal_fov_deg: float = 80.0
    """Horizontal field of view, in degrees."""
    pitch_deg: float = 9.0
    """Downward tilt of the optical axis, in degrees."""
    mount_height: float = 1.3
    """Height of the camera above the road, in metres."""
    mount_forward: float = 1.6
    """Distance of the camera ahead of the rear axle, in metres (behind the windscreen)."""
    mount_left: float = 0.0
    """Lateral offset of the camera from the car's axis, in metres, positive left."""
    mount_yaw_deg: float = 0.0
    """Yaw of the camera relative to the car, in degrees, positive left."""
    view_distance: float = 250.0
    """Ground further than this, in metres, is drawn as haze at the horizon."""

    def __post_init__(self) -> None:
        if self.image_height < 8 or self.image_width < 8:
            raise ValueError(
                f"camera image must be at least 8 x 8 pixels, got {self.image_height} x "
                f"{self.image_width}"
            )
        if not 10.0 <= self.horizontal_fov_deg <= 150.0:
            raise ValueError(
                f"CameraConfig.horizontal_fov_deg must lie in [10, 150], got "
                f"{self.horizontal_fov_deg}"
            )
        if self.mount_height <= 0 or self.view_distance <= 0:
            raise ValueError(
                f"CameraConfig.mount_height and view_distance must be positive, got "
                f"{self.mount_height} and {self.view_distance}"
            )

    @property
    def focal_length(self) -> float:
        """Focal length in pixels."""
        return 0.5 * self.image_width / math.tan(math.radians(0.5 * self.horizontal_fov_deg))


class GroundRays:
    """Where each pixel of a :class:`CameraConfig` sees the ground, computed once.

    Pixels are split into the sky band, rows ``[0, first_ground_row)``, and the ground band,
    rows ``[first_ground_row, H)``, whose rows all meet the ground within ``view_distance``.
    Shapes use ``R`` for the number of ground rows, ``W`` for the image width and ``S`` for
    the number of sky rows.

    Attributes:
        forward: ``(R,)`` forward distance of each ground row from the camera, in metres.
        lateral: ``(R, W)`` lateral position of each ground pixel, in metres, positive left.
        range: ``(R, W)`` distance from the camera to the ground point, in metres.
        footprint_lateral: ``(R,)`` lateral ground width of one pixel, in metres.
        footprint_d: ``(R, W)`` lateral ground extent of each pixel, in metres. Away from the
            image centre a pixel's footprint is a parallelogram: its top and bottom edges lie
            at different forward distances, so their lateral positions differ by
            ``|Y / F|`` times the forward depth.
        footprint_forward: ``(R,)`` forward ground depth of one pixel, in metres.
        sky_elevation: ``(S,)`` elevation of each sky row above the horizontal, in radians.
        column_azimuth: ``(W,)`` azimuth of each column relative to the optical axis, in
            radians, positive left.
    """

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        height, width = camera.image_height, camera.image_width
        focal = camera.focal_length
        theta = math.radians(camera.pitch_deg)
        centre_u, centre_v = 0.5 * width, 0.5 * height

        # Image-plane coordinates of pixel centres: x_c to the right, y_c down.
        x_c = (np.arange(width) + 0.5 - centre_u) / focal  # (W,)
        y_c = (np.arange(height) + 0.5 - centre_v) / focal  # (H,)

        # Ground intersection per row: t = h / (sin(theta) + y_c cos(theta)).
        descent = math.sin(theta) + y_c * math.cos(theta)  # (H,)
        with np.errstate(divide="ignore"):
            t = np.where(descent > 1e-9, camera.mount_height / descent, np.inf)  # (H,)
        forward = t * (math.cos(theta) - y_c * math.sin(theta))  # (H,)
        visible = np.isfinite(forward) & (forward > 0) & (forward <= camera.view_distance)
        if not visible[-1]:
            raise ValueError(
                f"the bottom image row does not see the ground within view_distance="
                f"{camera.view_distance} m; increase pitch_deg (got {camera.pitch_deg})"
            )
        first = int(np.argmax(visible))
        if not np.all(visible[first:]):
            raise ValueError("ground rows must be contiguous at the bottom of the image")
        self.first_ground_row = first

        # Ground band.
        rows_t = t[first:]  # (R,)
        self.forward = forward[first:].astype(np.float32)  # (R,)
        self.lateral = (-rows_t[:, None] * x_c[None, :]).astype(np.float32)  # (R, W)
        self.range = np.sqrt(
            self.forward[:, None] ** 2
            + self.lateral**2
            + camera.mount_height**2
        ).astype(np.float32)  # (R, W)
        self.footprint_lateral = (rows_t / focal).astype(np.float32)  # (R,)

        # Forward depth of a pixel: distance between the ground points of its top and bottom
        # edges (the top edge of the first ground row may lie beyond the horizon).
        edge_y = (np.arange(first, height + 1) - centre_v) / focal  # (R + 1,)
        edge_descent = math.sin(theta) + edge_y * math.cos(theta)
        edge_t = np.where(edge_descent > 1e-9, camera.mount_height / np.maximum(edge_descent,
                                                                                 1e-9), np.inf)
        edge_forward = edge_t * (math.cos(theta) - edge_y * math.sin(theta))
        edge_forward = np.minimum(edge_forward, 4.0 * camera.view_distance)
        self.footprint_forward = np.abs(np.diff(edge_forward)).astype(np.float32)  # (R,)
        slant = np.abs(self.lateral) / self.forward[:, None]  # (R, W)
        self.footprint_d = (
            self.footprint_lateral[:, None] + slant * self.footprint_forward[:, None]
        ).astype(np.float32)  # (R, W)

        # Sky band: elevation of each row, azimuth of each column.
        sky_y = y_c[:first]  # (S,)
        self.sky_elevation = np.arctan2(
            -(sky_y * math.cos(theta)) - math.sin(theta),
            math.cos(theta) - sky_y * math.sin(theta),
        ).astype(np.float32)  # (S,)
        self.column_azimuth = np.arctan(-x_c).astype(np.float32)  # (W,)
        self.horizon_row = centre_v - focal * math.tan(theta)

    @property
    def ground_rows(self) -> int:
        """Number of ground rows ``R``."""
        return len(self.forward)
