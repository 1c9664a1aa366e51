"""Perturbations of the camera input, for robustness tests and for training augmentation.

Each perturbation has a strength knob and draws its random parameters in
:meth:`~Perturbation.reset` from a generator that the caller seeds. The evaluation harness
derives that generator from the run's seed, so every policy faces the same perturbation.
Perturbations apply to float32 frames of shape ``(..., H, W, 3)`` with values in ``[0, 1]``.
Leading dimensions, such as the 16 frames of a training window, share the parameters drawn at
the last reset. Only the Gaussian noise is drawn afresh for every pixel of every call.

=================  ==========================================================================
name (for parse)   effect of ``strength``
=================  ==========================================================================
``noise``          :class:`GaussianNoise`: additive noise of variance ``strength`` (0.1, 0.2,
                   0.3 in the neural circuit policy paper), not clipped
``brightness``     :class:`BrightnessContrast`: brightness shift of ``0.3 * strength`` and
                   contrast factor ``1 + 0.6 * strength`` or its inverse, signs drawn per run
``shadow``         :class:`Shadow`: bands darkened to ``1 - 0.7 * strength`` of their light,
                   drifting across the image
``occlusion``      :class:`Occlusion`: opaque blotches covering ``0.25 * strength`` of the frame,
                   fixed for the run like dirt on the lens
``camera``         :class:`CameraOffset`: camera moved ``0.5 * strength`` metres sideways, to a
                   side drawn per run (changes the environment, not the pixels)
=================  ==========================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "Perturbation",
    "GaussianNoise",
    "BrightnessContrast",
    "Shadow",
    "Occlusion",
    "CameraOffset",
    "PERTURBATIONS",
    "parse_perturbation",
]


class Perturbation:
    """Base class: a perturbation of strength ``strength`` (0 leaves the input unchanged)."""

    name = "identity"

    def __init__(self, strength: float) -> None:
        strength = float(strength)
        if not math.isfinite(strength) or strength < 0:
            raise ValueError(
                f"{type(self).__name__} strength must be a finite number >= 0, got {strength}"
            )
        self.strength = strength
        self.rng = np.random.default_rng(0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strength={self.strength})"

    def spec(self) -> str:
        """Return the ``name:strength`` string that :func:`parse_perturbation` turns back
        into this perturbation."""
        return f"{self.name}:{self.strength:g}"

    def reset(self, rng: np.random.Generator) -> None:
        """Start a run: keep ``rng`` and draw the run's parameters from it."""
        self.rng = rng

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Return perturbed float32 frames of the same shape ``(..., H, W, 3)``."""
        return frames

    def attach(self, env: Any) -> None:
        """Apply the perturbation's effect on the environment itself (none by default)."""

    def detach(self, env: Any) -> None:
        """Undo :meth:`attach`."""


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(
            f"perturbations expect RGB frames of shape (..., H, W, 3), got {frames.shape}"
        )
    if frames.dtype != np.float32:
        raise TypeError(
            f"perturbations expect float32 frames in [0, 1], got {frames.dtype}; convert "
            f"uint8 observations with torchlnn.driving.policy.frame_to_float"
        )


class GaussianNoise(Perturbation):
    """Add zero-mean Gaussian noise of variance ``strength`` to every pixel and channel.

    The result is not clipped to ``[0, 1]``, so the added noise has exactly the stated
    variance, as in the noise protocol of the neural circuit policy paper.
    """

    name = "noise"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        _check_frames(frames)
        if self.strength == 0:
            return frames
        noise = self.rng.standard_normal(frames.shape, dtype=np.float32)
        noise *= np.float32(math.sqrt(self.strength))
        return frames + noise


class BrightnessContrast(Perturbation):
    """Shift brightness and scale contrast around each frame's mean, then clip to ``[0, 1]``.

    .. math::  y = \\operatorname{clip}\\big((x - \\bar x)\\,c + \\bar x + b,\\ 0,\\ 1\\big)

    with :math:`b = \\pm 0.3\\,\\text{strength}` and
    :math:`c = (1 + 0.6\\,\\text{strength})^{\\pm1}`, the two signs drawn independently at
    each reset. The mean :math:`\\bar x` is taken over
    each frame's pixels and channels. Before clipping, the mean moves by :math:`b` and the
    standard deviation is multiplied by :math:`c`.
    """

    name = "brightness"

    def __init__(self, strength: float) -> None:
        super().__init__(strength)
        self.brightness = 0.0
        self.contrast = 1.0

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.brightness = float(rng.choice([-1.0, 1.0]) * 0.3 * self.strength)
        self.contrast = float((1.0 + 0.6 * self.strength) ** rng.choice([-1.0, 1.0]))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        _check_frames(frames)
        if self.strength == 0:
            return frames
        mean = frames.mean(axis=(-3, -2, -1), keepdims=True)  # (..., 1, 1, 1)
        out = frames - mean
        out *= np.float32(self.contrast)
        out += mean + np.float32(self.brightness)
        return np.clip(out, 0.0, 1.0, out=out)


class Shadow(Perturbation):
    """Dark bands, like the shadows of poles or buildings, that drift across the image.

    At each reset, 1 to 3 bands are drawn with a random angle, position and drift speed.
    Together they are 0.2 to 0.4 image widths wide. Pixels inside a band keep
    ``1 - 0.7 * strength`` of their value. Each call advances the drift by one frame, and a
    band that leaves the image comes back on the other side. The boolean mask of the last call
    is kept in :attr:`last_mask`.
    """

    name = "shadow"

    def __init__(self, strength: float) -> None:
        super().__init__(strength)
        self.bands: list[tuple[float, float, float, float]] = []
        self.frame_index = 0
        self.last_mask: np.ndarray | None = None

    @property
    def factor(self) -> float:
        """Share of the light kept inside a shadow."""
        return max(0.0, 1.0 - 0.7 * self.strength)

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        count = int(rng.integers(1, 4))
        self.bands = []
        for _ in range(count):
            angle = rng.uniform(-0.6, 0.6) + (math.pi / 2 if rng.random() < 0.5 else 0.0)
            width = rng.uniform(0.2, 0.4) / count  # in image widths
            start = rng.uniform(0.0, 0.8)
            speed = rng.uniform(-0.01, 0.01)  # image widths per frame
            self.bands.append((angle, width, start, speed))
        self.frame_index = 0

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean ``(H, W)`` mask of the shadow at the current frame."""
        rows = np.arange(height, dtype=np.float32)[:, None] / width  # (H, 1)
        columns = np.arange(width, dtype=np.float32)[None, :] / width  # (1, W)
        inside = np.zeros((height, width), dtype=bool)
        for angle, band_width, start, speed in self.bands:
            position = columns * math.cos(angle) + rows * math.sin(angle)  # (H, W)
            # Positions span less than [-0.5, 1.5) image widths, so wrap the band there.
            offset = (start + speed * self.frame_index + 0.5) % 2.0 - 0.5
            inside |= (position >= offset) & (position < offset + band_width)
        return inside

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        _check_frames(frames)
        if self.strength == 0 or not self.bands:
            return frames
        height, width = frames.shape[-3:-1]
        inside = self.mask(height, width)
        self.last_mask = inside
        self.frame_index += 1
        scale = np.where(inside, np.float32(self.factor), np.float32(1.0))  # (H, W)
        return frames * scale[..., None]


class Occlusion(Perturbation):
    """Opaque blotches fixed on the image for a whole run, like dirt or a sticker on the lens.

    At each reset, ellipses are added until they cover ``0.25 * strength`` of the frame (to
    within one blotch); their colours are dark greys and browns. The boolean mask is kept in
    :attr:`mask`; it is drawn for the first frame size seen after the reset.
    """

    name = "occlusion"

    def __init__(self, strength: float) -> None:
        super().__init__(strength)
        self.mask: np.ndarray | None = None
        self.colour: np.ndarray | None = None

    @property
    def target_fraction(self) -> float:
        """Share of the frame to cover."""
        return min(0.25 * self.strength, 1.0)

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.mask = None
        self.colour = None

    def _draw(self, height: int, width: int) -> None:
        rng = self.rng
        mask = np.zeros((height, width), dtype=bool)
        colour = np.zeros((height, width, 3), dtype=np.float32)
        rows = np.arange(height)[:, None]
        columns = np.arange(width)[None, :]
        target = self.target_fraction * height * width
        while mask.sum() < target:
            centre_v = rng.uniform(0, height)
            centre_u = rng.uniform(0, width)
            radius_v = rng.uniform(0.05, 0.2) * height
            radius_u = rng.uniform(0.03, 0.12) * width
            blob = ((rows - centre_v) / radius_v) ** 2 + ((columns - centre_u) / radius_u) ** 2
            blob = blob <= 1.0
            tint = rng.uniform(0.05, 0.35) * np.array([1.0, 0.9, 0.75], dtype=np.float32)
            colour[blob & ~mask] = tint
            mask |= blob
        self.mask = mask
        self.colour = colour

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        _check_frames(frames)
        if self.strength == 0:
            return frames
        height, width = frames.shape[-3:-1]
        if self.mask is None or self.mask.shape != (height, width):
            self._draw(height, width)
        return np.where(self.mask[:, :, None], self.colour, frames)


class CameraOffset(Perturbation):
    """Mount the camera off the car's axis by ``0.5 * strength`` metres, to a side drawn at
    each reset, plus an optional yaw of ``yaw_deg * strength`` degrees to the same side.

    It acts on the environment through ``env.set_camera_offset(lateral, yaw)``; the frames
    pass unchanged. The CarRacing adapter supports the lateral shift only.
    """

    name = "camera"

    def __init__(self, strength: float, yaw_deg: float = 0.0) -> None:
        super().__init__(strength)
        self.yaw_deg = float(yaw_deg)
        self.lateral = 0.0
        self.yaw = 0.0

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        side = float(rng.choice([-1.0, 1.0]))
        self.lateral = side * 0.5 * self.strength
        self.yaw = side * math.radians(self.yaw_deg * self.strength)

    def attach(self, env: Any) -> None:
        env.unwrapped.set_camera_offset(self.lateral, self.yaw)

    def detach(self, env: Any) -> None:
        env.unwrapped.set_camera_offset(0.0, 0.0)


PERTURBATIONS: dict[str, type[Perturbation]] = {
    kind.name: kind for kind in (GaussianNoise, BrightnessContrast, Shadow, Occlusion, CameraOffset)
}
"""Perturbation classes by the name used in ``name:strength`` strings."""


def parse_perturbation(text: str) -> Perturbation:
    """Build a perturbation from ``"name:strength"``, e.g. ``"noise:0.1"`` or ``"shadow:1"``."""
    name, separator, value = text.partition(":")
    if not separator or name not in PERTURBATIONS:
        raise ValueError(
            f"invalid perturbation {text!r}; expected name:strength with name one of "
            f"{sorted(PERTURBATIONS)}, e.g. noise:0.1"
        )
    try:
        strength = float(value)
    except ValueError:
        raise ValueError(
            f"invalid strength {value!r} in perturbation {text!r}; expected a number"
        ) from None
    return PERTURBATIONS[name](strength)
