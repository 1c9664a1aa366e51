"""Road geometry: a centreline sampled at uniform arc length, and a generator of realistic roads.

Conventions used throughout :mod:`torchlnn.driving`:

- World frame: ``x`` east, ``y`` north, metres. Headings are measured counter-clockwise from
  ``+x`` in radians.
- Curvature :math:`\\kappa = d\\psi / ds` in 1/m, positive when the road (or the car) turns left.
- Lateral offset :math:`d` is positive to the left of the centreline.

Generated roads follow the way real roads are designed: straights, circular arcs and clothoid
transitions between them. On a clothoid the curvature changes linearly with arc length,

.. math::

    \\kappa(s) = \\kappa_0 + c\\,(s - s_0), \\qquad
    \\psi(s) = \\psi_0 + \\int_{s_0}^{s} \\kappa(u)\\,du, \\qquad
    \\dot x = \\cos\\psi, \\quad \\dot y = \\sin\\psi,

so the lateral acceleration :math:`v^2 \\kappa` of a car that follows the road changes at a
bounded rate (the curvature rate :math:`c` in 1/m^2). An arc has constant curvature and a
straight has zero curvature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Centreline", "RoadConfig", "Segment", "generate_road", "curvature_profile"]


class Centreline:
    """A planar path sampled at uniform arc length, open or closed.

    Arguments:
        x: ``(N,)`` east coordinate of each sample, in metres.
        y: ``(N,)`` north coordinate of each sample, in metres.
        heading: ``(N,)`` unwrapped heading of the tangent, in radians.
        curvature: ``(N,)`` signed curvature, in 1/m (positive turns left).
        step: arc length between consecutive samples, in metres.
        closed: whether the path is a loop. On a loop, arc lengths wrap modulo :attr:`length`
            and the last sample connects back to the first.

    Sample ``i`` lies at arc length ``s = i * step``.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        heading: np.ndarray,
        curvature: np.ndarray,
        step: float,
        closed: bool = False,
    ) -> None:
        arrays = {"x": x, "y": y, "heading": heading, "curvature": curvature}
        count = len(x)
        for name, values in arrays.items():
            if np.ndim(values) != 1 or len(values) != count:
                raise ValueError(
                    f"Centreline {name} must be a 1-D array of {count} samples like x, "
                    f"got shape {np.shape(values)}; pass one value per sample."
                )
        if count < 2:
            raise ValueError(f"a Centreline needs at least 2 samples, got {count}")
        if not step > 0:
            raise ValueError(f"Centreline step must be a positive length in metres, got {step}")

        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.heading = np.asarray(heading, dtype=np.float64)
        self.curvature = np.asarray(curvature, dtype=np.float64)
        self.step = float(step)
        self.closed = bool(closed)
        self.s = np.arange(count) * self.step

    def __len__(self) -> int:
        return len(self.x)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Centreline):
            return NotImplemented
        return (
            self.step == other.step
            and self.closed == other.closed
            and all(
                np.array_equal(getattr(self, name), getattr(other, name))
                for name in ("x", "y", "heading", "curvature")
            )
        )

    __hash__ = None  # mutable arrays: equal paths need not share a hash

    def __repr__(self) -> str:
        kind = "closed" if self.closed else "open"
        return f"Centreline({len(self)} samples, length={self.length:.1f} m, {kind})"

    @property
    def length(self) -> float:
        """Arc length of the path in metres (a loop includes the closing segment)."""
        count = len(self.x)
        return (count if self.closed else count - 1) * self.step

    # Construction -------------------------------------------------------------------------

    @classmethod
    def from_curvature(
        cls,
        curvature: np.ndarray,
        step: float,
        x0: float = 0.0,
        y0: float = 0.0,
        heading0: float = 0.0,
    ) -> Centreline:
        """Integrate a curvature profile sampled every ``step`` metres into a path.

        The heading is integrated with the trapezoid rule and the position with the midpoint
        heading of each step, so an arc of constant curvature closes to within float error.
        """
        curvature = np.asarray(curvature, dtype=np.float64)

        # psi_i = psi_0 + sum of trapezoids of kappa up to sample i.
        increments = 0.5 * (curvature[1:] + curvature[:-1]) * step
        heading = heading0 + np.concatenate([[0.0], np.cumsum(increments)])

        # Exact chord of an arc: length step * sinc(d_psi / 2) along the mid heading.
        middle = 0.5 * (heading[1:] + heading[:-1])
        chord = step * np.sinc(increments / (2.0 * np.pi))
        x = x0 + np.concatenate([[0.0], np.cumsum(chord * np.cos(middle))])
        y = y0 + np.concatenate([[0.0], np.cumsum(chord * np.sin(middle))])
        return cls(x, y, heading, curvature, step)

    @classmethod
    def from_points(
        cls, x: np.ndarray, y: np.ndarray, step: float, closed: bool, smoothing: float = 0.0
    ) -> Centreline:
        """Resample a polyline at uniform arc length and estimate heading and curvature.

        Arguments:
            x, y: ``(M,)`` vertices of the polyline in order of travel, in metres.
            step: arc length between output samples, in metres.
            closed: whether the last vertex connects back to the first.
            smoothing: width in metres of a moving average applied to the resampled points,
                which turns the corners of a coarse polyline into smooth bends; 0 keeps them.
        """
        x, y = _catmull_rom(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                            closed)

        # Resample by chord length.
        chords = np.hypot(np.diff(x), np.diff(y))
        cumulative = np.concatenate([[0.0], np.cumsum(chords)])
        total = cumulative[-1]
        count = int(round(total / step))
        if closed:
            step = total / count
            s = np.arange(count) * step
        else:
            step = total / count
            s = np.arange(count + 1) * step
        xs = np.interp(s, cumulative, x)
        ys = np.interp(s, cumulative, y)

        # Moving average of the points (circular on a loop).
        window = int(round(smoothing / step)) | 1
        if window > 1:
            xs = _moving_average(xs, window, closed)
            ys = _moving_average(ys, window, closed)

        # Heading from central differences, curvature from the heading.
        if closed:
            dx = np.roll(xs, -1) - np.roll(xs, 1)
            dy = np.roll(ys, -1) - np.roll(ys, 1)
        else:
            dx = np.gradient(xs)
            dy = np.gradient(ys)
        heading = np.unwrap(np.arctan2(dy, dx))
        if closed:
            turn = np.angle(np.exp(1j * (np.roll(heading, -1) - np.roll(heading, 1))))
            curvature = turn / (2.0 * step)
        else:
            curvature = np.gradient(heading, step)
        if window > 1:
            curvature = _moving_average(curvature, window, closed)
        return cls(xs, ys, heading, curvature, step, closed=closed)

    # Queries ------------------------------------------------------------------------------

    def wrap(self, s: np.ndarray | float) -> np.ndarray | float:
        """Map arc lengths onto the path: modulo the length on a loop, clipped on an open path."""
        if self.closed:
            return np.mod(s, self.length)
        return np.clip(s, 0.0, self.s[-1])

    def sample(self, s: np.ndarray | float) -> tuple[np.ndarray, ...]:
        """Interpolate ``(x, y, heading, curvature)`` at arc lengths ``s`` (any shape)."""
        s = np.asarray(s, dtype=np.float64)
        position = self.wrap(s) / self.step
        index = np.floor(position).astype(np.int64)
        if self.closed:
            index = np.mod(index, len(self))
            following = np.mod(index + 1, len(self))
        else:
            index = np.minimum(index, len(self) - 2)
            following = index + 1
        weight = position - np.floor(position) if self.closed else position - index

        def lerp(values: np.ndarray) -> np.ndarray:
            return values[index] + weight * (values[following] - values[index])

        # On a loop the unwrapped heading jumps by a multiple of 2 pi at the seam.
        heading_step = self.heading[following] - self.heading[index]
        heading_step = np.angle(np.exp(1j * heading_step))
        heading = self.heading[index] + weight * heading_step
        return lerp(self.x), lerp(self.y), heading, lerp(self.curvature)

    def curvature_at(self, s: np.ndarray | float) -> np.ndarray:
        """Interpolate the curvature (1/m) at arc lengths ``s``."""
        return self.sample(s)[3]

    def project(
        self, x: float, y: float, s_hint: float | None = None, search: float = 30.0
    ) -> tuple[float, float, float]:
        """Find the nearest point of the path to ``(x, y)``.

        Arguments:
            x, y: the query point in metres.
            s_hint: arc length near which to search, for example the previous projection.
                ``None`` searches the whole path.
            search: half width in metres of the window searched around ``s_hint``.

        Returns:
            ``(s, lateral, heading)``: arc length of the nearest point, signed distance to it
            (positive left of the direction of travel) and the path heading there.
        """
        count = len(self)
        if s_hint is None:
            candidates = np.arange(count)
        else:
            centre = int(round(float(self.wrap(s_hint)) / self.step))
            half = int(math.ceil(search / self.step))
            candidates = np.arange(centre - half, centre + half + 1)
            if self.closed:
                candidates = np.mod(candidates, count)
            else:
                candidates = candidates[(candidates >= 0) & (candidates < count)]

        # Nearest sample, then the exact foot point on its tangent line.
        squared = (self.x[candidates] - x) ** 2 + (self.y[candidates] - y) ** 2
        nearest = int(candidates[int(np.argmin(squared))])
        heading = self.heading[nearest]
        cos_h, sin_h = math.cos(heading), math.sin(heading)
        dx, dy = x - self.x[nearest], y - self.y[nearest]
        along = dx * cos_h + dy * sin_h
        lateral = -dx * sin_h + dy * cos_h
        s = float(self.wrap(self.s[nearest] + along))
        heading = heading + along * self.curvature[nearest]
        return s, lateral, heading

    def offset_point(self, s: float, lateral: float) -> tuple[float, float, float]:
        """Return ``(x, y, heading)`` of the point ``lateral`` metres left of arc length ``s``."""
        px, py, heading, _ = self.sample(s)
        x = float(px) - lateral * math.sin(float(heading))
        y = float(py) + lateral * math.cos(float(heading))
        return x, y, float(heading)


def _catmull_rom(
    x: np.ndarray, y: np.ndarray, closed: bool, subdivisions: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Densify a polyline with a uniform Catmull-Rom spline through its vertices.

    The spline passes through every vertex with a continuous tangent, which removes the
    corners of a coarse polyline. A closed polyline returns with its first point repeated at
    the end.
    """
    if closed:
        points = np.stack([x, y], axis=1)  # (M, 2)
        before = np.roll(points, 1, axis=0)
        after = np.roll(points, -1, axis=0)
        after2 = np.roll(points, -2, axis=0)
    else:
        padded = np.concatenate([
            [2 * np.array([x[0], y[0]]) - np.array([x[1], y[1]])],
            np.stack([x, y], axis=1),
            [2 * np.array([x[-1], y[-1]]) - np.array([x[-2], y[-2]])],
        ])  # (M + 2, 2)
        before, points, after, after2 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]

    t = (np.arange(subdivisions) / subdivisions)[None, :, None]  # (1, K, 1)
    p0, p1, p2, p3 = (a[:, None, :] for a in (before, points, after, after2))  # (M, 1, 2)
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    ).reshape(-1, 2)  # (M * K, 2)
    end = points[0] if closed else after[-1]
    curve = np.concatenate([curve, end[None, :]])
    return curve[:, 0], curve[:, 1]


def _moving_average(values: np.ndarray, window: int, closed: bool) -> np.ndarray:
    """Average ``values`` over ``window`` samples, circularly on a loop, shrinking at open ends."""
    kernel = np.ones(window) / window
    half = window // 2
    if closed:
        padded = np.concatenate([values[-half:], values, values[:half]])
        return np.convolve(padded, kernel, mode="valid")
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


@dataclass(frozen=True)
class RoadConfig:
    """Parameters of road generation. Defaults follow rural two-lane roads driven at
    50-70 km/h."""

    lane_width: float = 3.5
    """Width of one lane between the centres of its markings, in metres."""
    min_radius: float = 60.0
    """Tightest curve radius in metres (curvature at most 1/min_radius)."""
    max_radius: float = 600.0
    """Gentlest curve radius in metres; radii are drawn log-uniformly in between."""
    straight_probability: float = 0.25
    """Probability that the next element after a transition is a straight."""
    straight_length: tuple[float, float] = (30.0, 250.0)
    """Range of straight lengths in metres."""
    arc_angle_deg: tuple[float, float] = (10.0, 90.0)
    """Range of the heading change of one arc, in degrees."""
    curvature_rate: tuple[float, float] = (1.5e-4, 6e-4)
    """Range of dkappa/ds on clothoid transitions, in 1/m^2 (comfort limits at 50-70 km/h)."""
    min_transition: float = 10.0
    """Shortest clothoid transition in metres."""
    max_heading_deg: float = 75.0
    """Bound on the road heading relative to the start, in degrees. Below 90 degrees the road
    always advances along the start direction, so it can never cross itself."""
    lead_in: float = 20.0
    """Length of the straight at the start of every road, in metres."""
    sample_step: float = 0.25
    """Arc length between centreline samples, in metres."""

    def __post_init__(self) -> None:
        if not 0 < self.min_radius <= self.max_radius:
            raise ValueError(
                f"RoadConfig needs 0 < min_radius <= max_radius, got min_radius="
                f"{self.min_radius} and max_radius={self.max_radius}"
            )
        if not 0 < self.max_heading_deg < 90:
            raise ValueError(
                f"RoadConfig.max_heading_deg must lie in (0, 90) so that roads cannot cross "
                f"themselves, got {self.max_heading_deg}"
            )
        if not 0.0 <= self.straight_probability <= 1.0:
            raise ValueError(
                f"RoadConfig.straight_probability must lie in [0, 1], got "
                f"{self.straight_probability}"
            )
        if self.lane_width <= 0 or self.sample_step <= 0:
            raise ValueError(
                f"RoadConfig lane_width and sample_step must be positive, got "
                f"{self.lane_width} and {self.sample_step}"
            )


@dataclass(frozen=True)
class Segment:
    """One element of a road: curvature goes linearly from ``start_curvature`` to
    ``end_curvature`` over ``length`` metres (equal for arcs and straights)."""

    kind: str
    """``"straight"``, ``"arc"`` or ``"clothoid"``."""
    start: float
    """Arc length where the segment begins, in metres."""
    length: float
    """Length in metres."""
    start_curvature: float
    """Curvature at the start, in 1/m."""
    end_curvature: float
    """Curvature at the end, in 1/m."""


def _plan_segments(length: float, rng: np.random.Generator, config: RoadConfig) -> list[Segment]:
    """Draw a sequence of straights, arcs and clothoids covering at least ``length`` metres.

    The heading stays within ``config.max_heading_deg`` of the start direction: before each
    element the planner adds the turn of the slowest possible clothoid back to a straight, and
    shortens (or reverses) the element when that total would leave the bound.
    """
    segments = [Segment("straight", 0.0, config.lead_in, 0.0, 0.0)]
    position = config.lead_in
    heading = 0.0
    curvature = 0.0
    bound = math.radians(config.max_heading_deg)
    log_radius = (math.log(config.min_radius), math.log(config.max_radius))
    slowest_rate = config.curvature_rate[0]

    def exit_turn(kappa: float) -> float:
        # Heading turned while the curvature returns from kappa to zero at the slowest rate.
        return 0.5 * kappa * max(abs(kappa) / slowest_rate, config.min_transition)

    def transition_for(target: float, rate: float) -> tuple[float, float]:
        # Length of the clothoid from the current curvature to target, and its heading change.
        length = max(abs(target - curvature) / rate, config.min_transition)
        return length, 0.5 * (curvature + target) * length

    while position < length:
        # Choose the next curvature: a straight, or an arc that turns back towards the start
        # direction the more often the further the road has turned away from it.
        if curvature != 0.0 and rng.random() < config.straight_probability:
            target = 0.0
        else:
            radius = math.exp(rng.uniform(*log_radius))
            if heading == 0.0:
                sign = 1.0 if rng.random() < 0.5 else -1.0
            else:
                back = rng.random() < 0.5 + 0.5 * min(abs(heading) / bound, 1.0)
                sign = -math.copysign(1.0, heading) if back else math.copysign(1.0, heading)
            target = sign / radius

        # Clothoid transition to the target curvature; reverse the curve, or straighten,
        # when the transition would already leave the heading bound.
        rate = rng.uniform(*config.curvature_rate)
        transition, turn = transition_for(target, rate)
        if abs(heading + turn + exit_turn(target)) > bound:
            target = -target
            transition, turn = transition_for(target, rate)
        if abs(heading + turn + exit_turn(target)) > bound:
            target = 0.0
            transition, turn = transition_for(target, rate)
        segments.append(Segment("clothoid", position, transition, curvature, target))
        position += transition
        heading += turn
        curvature = target

        # Straight or arc at the target curvature.
        if target == 0.0:
            straight = rng.uniform(*config.straight_length)
            segments.append(Segment("straight", position, straight, 0.0, 0.0))
            position += straight
            continue
        sign = math.copysign(1.0, target)
        room = bound - sign * heading - abs(exit_turn(target))
        angle = min(math.radians(rng.uniform(*config.arc_angle_deg)), max(room, 0.0))
        arc = angle / abs(target)
        if arc > 0.0:
            segments.append(Segment("arc", position, arc, target, target))
            position += arc
            heading += target * arc
    return segments


def curvature_profile(segments: list[Segment], step: float, length: float) -> np.ndarray:
    """Sample the piecewise-linear curvature of ``segments`` every ``step`` metres."""
    s = np.arange(int(math.floor(length / step)) + 1) * step
    starts = np.array([segment.start for segment in segments])
    lengths = np.array([segment.length for segment in segments])
    kappa0 = np.array([segment.start_curvature for segment in segments])
    kappa1 = np.array([segment.end_curvature for segment in segments])

    index = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(segments) - 1)
    fraction = np.clip((s - starts[index]) / lengths[index], 0.0, 1.0)
    return kappa0[index] + fraction * (kappa1[index] - kappa0[index])


def generate_road(
    length: float, rng: np.random.Generator, config: RoadConfig | None = None
) -> tuple[Centreline, list[Segment]]:
    """Generate a random road at least ``length`` metres long.

    The road starts at the origin heading east with a straight of ``config.lead_in`` metres.

    Returns:
        The centreline of the driven lane and the list of segments it was built from.
    """
    if not length > 0:
        raise ValueError(f"road length must be positive in metres, got {length}")
    config = config or RoadConfig()
    segments = _plan_segments(length, rng, config)
    kappa = curvature_profile(segments, config.sample_step, length)
    return Centreline.from_curvature(kappa, config.sample_step), segments
