"""Vectorised perspective renderer of a road seen from the front camera.

The renderer draws a flat world: a two-lane road along a :class:`~torchlnn.driving.road.Centreline`
with lane markings, a paved shoulder and a grass or soil verge, cast shadows of roadside trees,
poles and bridges, a sky with distant hills, and haze. It is written for speed with numpy on
one core; every frame costs a fixed number of whole-array operations.

How a frame is drawn (see :mod:`torchlnn.driving.camera` for the ground rays):

1. Each ground row sees the ground at one forward distance ``F``. Transform the centreline
   ahead into the camera frame and interpolate, per row, where the centreline crosses that
   distance: its lateral position ``c``, its direction ``phi`` relative to the camera and its
   arc length ``s``.
2. Give every pixel road coordinates: with ``e = Y - c`` the pixel's lateral distance from the
   centreline crossing, its offset from the lane centre is ``d = e cos(phi)`` and its arc length
   is ``s + e sin(phi)``. This is exact on a straight road. On a curve of 60 m radius it puts
   road points within 2 cm of their true place 14 m ahead and within 8 cm 25 m ahead; further
   away, where the road turns far from the view direction, the road is drawn approximately.
3. Shade from ``(s, d)``: asphalt or verge, anti-aliased markings (their coverage of the pixel
   footprint is computed in closed form, so thin far lines fade instead of flickering), a
   mip-mapped noise texture, the precomputed shadow map, and haze with distance.

Lateral layout, with ``d`` measured from the centre of the driven lane and ``w`` the lane
width: right edge line at ``-w/2``, centre line at ``+w/2``, left edge line at ``3w/2``; a paved
shoulder of ``shoulder`` metres beyond each edge line, then the verge. Cars drive on the right.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from torchlnn.driving.camera import CameraConfig, GroundRays
from torchlnn.driving.road import Centreline

__all__ = [
    "Appearance",
    "RoadsideObjects",
    "Scenery",
    "RoadRenderer",
    "noise_texture_pyramid",
]

# Texture sampling: one texel is 4 cm of ground; the 1024-texel tile repeats every 41 m.
_TEXEL = 0.04
_TEXTURE_SIZE = 1024
_TEXTURE_ORIGIN = 4096.0  # metres added to coordinates so that texel indices stay positive

# Shadow map resolution, in metres, and the lateral band it covers around the lane centre.
_SHADOW_STEP_S = 0.125
_SHADOW_STEP_D = 0.125
_SHADOW_D_RANGE = (-14.0, 18.0)


@functools.lru_cache(maxsize=4)
def noise_texture_pyramid(seed: int = 0, size: int = _TEXTURE_SIZE) -> tuple[np.ndarray, ...]:
    """Return a tileable multi-octave value-noise texture and its mip levels.

    Level 0 is ``(size, size)`` with zero mean and unit standard deviation. Level ``k`` is the
    2 x 2 box average of level ``k - 1``, down to 1 x 1. Octaves have periods from ``size/4``
    down to 2 texels, with amplitude falling by 0.6 per octave.
    """
    if size & (size - 1) or size < 4:
        raise ValueError(f"texture size must be a power of two >= 4, got {size}")
    rng = np.random.default_rng(seed)
    texture = np.zeros((size, size), dtype=np.float64)
    amplitude = 1.0
    grid = 4
    while grid <= size // 2:
        # Random values on a periodic grid, bilinearly interpolated to the full size.
        values = rng.standard_normal((grid, grid))
        position = np.arange(size) * grid / size
        low = np.floor(position).astype(np.int64)
        high = (low + 1) % grid
        weight = position - low
        weight = weight * weight * (3.0 - 2.0 * weight)  # smoothstep between grid values
        rows = values[low] * (1 - weight)[:, None] + values[high] * weight[:, None]
        octave = rows[:, low] * (1 - weight)[None, :] + rows[:, high] * weight[None, :]
        texture += amplitude * octave
        amplitude *= 0.6
        grid *= 2
    texture -= texture.mean()
    texture /= texture.std()

    levels = [texture.astype(np.float32)]
    while levels[-1].shape[0] > 1:
        previous = levels[-1]
        half = previous.shape[0] // 2
        levels.append(previous.reshape(half, 2, half, 2).mean(axis=(1, 3)))
    return tuple(levels)


@dataclass(frozen=True)
class Appearance:
    """The look of one episode: colours, markings, light and weather. Colours are linear RGB
    reflectances in [0, 1]."""

    lane_width: float
    """Lane width in metres (copied from the road)."""
    shoulder: float
    """Paved width beyond each edge line, in metres."""
    line_width: float
    """Width of the painted lines, in metres."""
    dash_length: float
    """Length of one dash of the centre line, in metres."""
    dash_period: float
    """Dash plus gap, in metres."""
    centre_solid: bool
    """Whether the centre line is solid instead of dashed."""
    marking_wear: float
    """0 for fresh paint, towards 1 for faded, patchy lines."""
    asphalt: tuple[float, float, float]
    """Asphalt colour."""
    asphalt_texture: float
    """Relative contrast of the asphalt texture."""
    verge: tuple[float, float, float]
    """Verge colour (grass, dry grass or soil)."""
    verge_texture: float
    """Relative contrast of the verge texture."""
    edge_line: tuple[float, float, float]
    """Colour of the edge lines."""
    centre_line: tuple[float, float, float]
    """Colour of the centre line (white or yellow)."""
    sky_zenith: tuple[float, float, float]
    """Sky colour overhead."""
    sky_horizon: tuple[float, float, float]
    """Sky colour at the horizon, also the colour of the haze."""
    hills: tuple[float, float, float]
    """Colour of the distant hills before haze."""
    exposure: float
    """Overall brightness multiplier."""
    ambient: float
    """Share of light that reaches shadowed ground."""
    sun_elevation: float
    """Sun elevation in radians."""
    sun_azimuth: float
    """Sun azimuth in radians, counter-clockwise from east."""
    cloudiness: float
    """Depth of the slow brightness changes from passing cloud shadows, 0 to 1."""
    visibility: float
    """Distance at which haze covers 63 % of the ground colour, in metres."""

    @classmethod
    def sample(cls, rng: np.random.Generator, lane_width: float = 3.5) -> Appearance:
        """Draw a random appearance; the ranges cover dry daylight conditions on rural roads."""

        def jitter(colour: tuple[float, ...], amount: float) -> tuple[float, float, float]:
            values = np.clip(np.asarray(colour) * (1 + rng.uniform(-amount, amount, 3)), 0, 1)
            return tuple(float(v) for v in values)

        grey = rng.uniform(0.22, 0.42)
        verge_kind = rng.choice(3, p=[0.6, 0.25, 0.15])
        verge = [(0.20, 0.34, 0.12), (0.45, 0.42, 0.22), (0.40, 0.32, 0.24)][verge_kind]
        yellow = rng.random() < 0.35
        overcast = rng.random() < 0.3
        zenith = (0.55, 0.58, 0.62) if overcast else (0.30, 0.48, 0.80)
        horizon = (0.78, 0.80, 0.82) if overcast else (0.72, 0.80, 0.90)
        return cls(
            lane_width=lane_width,
            shoulder=float(rng.uniform(0.3, 1.2)),
            line_width=float(rng.uniform(0.10, 0.16)),
            dash_length=float(rng.uniform(2.5, 4.5)),
            dash_period=float(rng.uniform(8.0, 13.0)),
            centre_solid=bool(rng.random() < 0.2),
            marking_wear=float(rng.uniform(0.0, 0.6)),
            asphalt=jitter((grey, grey, grey * 1.02), 0.02),
            asphalt_texture=float(rng.uniform(0.06, 0.16)),
            verge=jitter(verge, 0.15),
            verge_texture=float(rng.uniform(0.15, 0.35)),
            edge_line=jitter((0.88, 0.88, 0.86), 0.05),
            centre_line=jitter((0.85, 0.68, 0.15) if yellow else (0.88, 0.88, 0.86), 0.05),
            sky_zenith=jitter(zenith, 0.08),
            sky_horizon=jitter(horizon, 0.05),
            hills=jitter((0.32, 0.40, 0.36), 0.15),
            exposure=float(rng.uniform(0.75, 1.25)),
            ambient=float(rng.uniform(0.55, 0.8) if overcast else rng.uniform(0.3, 0.55)),
            sun_elevation=float(math.radians(rng.uniform(15.0, 65.0))),
            sun_azimuth=float(rng.uniform(0.0, 2.0 * math.pi)),
            cloudiness=float(rng.uniform(0.0, 0.5)),
            visibility=float(rng.uniform(250.0, 1200.0)),
        )


@dataclass(frozen=True)
class RoadsideObjects:
    """Trees and utility poles beside the road, sorted by arc length. Arrays have shape
    ``(N,)`` except ``colour``."""

    kind: np.ndarray
    """0 for a tree, 1 for a pole."""
    s: np.ndarray
    """Arc length of the object's base along the road, in metres."""
    d: np.ndarray
    """Lateral position of the base, in metres from the lane centre, positive left."""
    x: np.ndarray
    """World east coordinate of the base, in metres."""
    y: np.ndarray
    """World north coordinate of the base, in metres."""
    height: np.ndarray
    """Height of the top, in metres."""
    radius: np.ndarray
    """Crown radius of a tree, half width of a pole, in metres."""
    trunk: np.ndarray
    """Half width of a tree's trunk, in metres (poles: same as ``radius``)."""
    colour: np.ndarray
    """``(N, 3)`` colour of the crown or pole."""

    @classmethod
    def generate(
        cls, centreline: Centreline, rng: np.random.Generator, appearance: Appearance
    ) -> RoadsideObjects:
        """Draw stretches of tree-lined road between open fields, and a line of poles on
        some roads."""
        lane = appearance.lane_width
        right_edge = -0.5 * lane - appearance.shoulder
        left_edge = 1.5 * lane + appearance.shoulder
        rows: list[tuple[float, ...]] = []
        foliage = np.array([0.16, 0.28, 0.10])

        for side_edge, side in ((right_edge, -1.0), (left_edge, 1.0)):
            position = 0.0
            while position < centreline.length:
                stretch = rng.uniform(50.0, 300.0)
                per_100m = rng.choice([0.0, rng.uniform(1.0, 4.0), rng.uniform(4.0, 12.0)])
                for s_tree in position + rng.uniform(0, stretch, rng.poisson(
                        per_100m * stretch / 100.0)):
                    crown = rng.uniform(1.5, 4.0)
                    tint = foliage * rng.uniform(0.7, 1.3, 3)
                    rows.append((0.0, s_tree, side_edge + side * rng.uniform(1.5, 9.0),
                                 rng.uniform(max(4.0, 2.2 * crown), 11.0), crown,
                                 rng.uniform(0.12, 0.25), *tint))
                position += stretch

        if rng.random() < 0.4:
            edge, side = (right_edge, -1.0) if rng.random() < 0.5 else (left_edge, 1.0)
            spacing = rng.uniform(35.0, 55.0)
            d_pole = edge + side * rng.uniform(1.0, 3.0)
            height = rng.uniform(7.0, 10.0)
            grey = rng.uniform(0.25, 0.45)
            for s_pole in np.arange(rng.uniform(0, spacing), centreline.length, spacing):
                rows.append((1.0, s_pole, d_pole, height, 0.13, 0.13, grey, grey * 0.9,
                             grey * 0.8))

        table = np.array(rows, dtype=np.float64).reshape(-1, 9)
        table = table[(table[:, 1] >= 0) & (table[:, 1] < centreline.length)]
        table = table[np.argsort(table[:, 1], kind="stable")]
        px, py, heading, _ = centreline.sample(table[:, 1])
        x = px - table[:, 2] * np.sin(heading)
        y = py + table[:, 2] * np.cos(heading)
        return cls(
            kind=table[:, 0].astype(np.int8),
            s=table[:, 1],
            d=table[:, 2],
            x=x,
            y=y,
            height=table[:, 3],
            radius=table[:, 4],
            trunk=table[:, 5],
            colour=table[:, 6:9].astype(np.float32),
        )


class Scenery:
    """Everything drawn for one episode besides the road surface itself: roadside objects and
    their shadow map, the profile of the hills and the cloud shadows.

    Attributes:
        appearance: the :class:`Appearance` of the episode.
        objects: the :class:`RoadsideObjects`.
        shadow: ``(N_s, N_d)`` share of direct sunlight reaching the ground (1 lit, 0 shaded),
            sampled every 0.125 m of arc length and every 0.125 m laterally over ``d`` in
            ``[-14, 18)`` metres.
        hill_profile: ``(360,)`` elevation of the hill tops in radians, one per degree of
            world azimuth.
        cloud_profile: ``(N_c,)`` direct-light multiplier from cloud shadows, one per 10 m of
            arc length.
        texture_offset: ``(s, d)`` shift of the road texture in metres, so that episodes do
            not share texture patches at the same place on the road.
    """

    def __init__(
        self,
        appearance: Appearance,
        objects: RoadsideObjects,
        shadow: np.ndarray,
        hill_profile: np.ndarray,
        cloud_profile: np.ndarray,
        texture_offset: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.appearance = appearance
        self.objects = objects
        self.shadow = shadow
        self.hill_profile = hill_profile
        self.cloud_profile = cloud_profile
        self.texture_offset = texture_offset

    @classmethod
    def generate(
        cls, centreline: Centreline, rng: np.random.Generator, appearance: Appearance
    ) -> Scenery:
        """Draw the roadside objects and their shadows, the hills and the clouds."""
        objects = RoadsideObjects.generate(centreline, rng, appearance)
        shadow = _shadow_map(centreline, objects, rng, appearance)

        # Hills: a few sinusoids in azimuth, between 0.3 and 4 degrees high.
        azimuth = np.radians(np.arange(360.0))
        hills = np.zeros(360)
        for harmonic in range(1, 7):
            hills += rng.uniform(0.2, 1.0) / harmonic * np.cos(
                harmonic * azimuth + rng.uniform(0, 2 * math.pi)
            )
        hills = (hills - hills.min()) / (np.ptp(hills) + 1e-9)
        hills = np.radians(0.3 + rng.uniform(1.0, 3.7) * hills)

        # Cloud shadows: smooth noise along the road with features of about 100 m.
        count = int(centreline.length // 10.0) + 2
        coarse = rng.standard_normal(count // 10 + 2)
        clouds = np.interp(np.arange(count) / 10.0, np.arange(len(coarse)), coarse)
        clouds = 1.0 - appearance.cloudiness * (clouds > 0.3) * np.minimum(clouds - 0.3, 1.0)
        return cls(
            appearance,
            objects,
            shadow.astype(np.float32),
            hills.astype(np.float32),
            np.clip(clouds, 0.0, 1.0).astype(np.float32),
            (float(rng.uniform(0, 1000.0)), float(rng.uniform(0, 1000.0))),
        )


def _shadow_map(
    centreline: Centreline,
    objects: RoadsideObjects,
    rng: np.random.Generator,
    appearance: Appearance,
) -> np.ndarray:
    """Rasterise the shadows of the roadside objects, and of buildings beside the road, in
    road coordinates."""
    count_s = int(centreline.length / _SHADOW_STEP_S) + 1
    count_d = int((_SHADOW_D_RANGE[1] - _SHADOW_D_RANGE[0]) / _SHADOW_STEP_D)
    shade = np.ones((count_s, count_d), dtype=np.float64)
    # Ground shift of a shadow per metre of object height, pointing away from the sun.
    reach = 1.0 / math.tan(appearance.sun_elevation)
    stretch = min(1.0 / math.sin(appearance.sun_elevation), 3.0)

    def stamp(s0: float, d0: float, along_s: float, along_d: float, half_length: float,
              half_width: float, opacity: float) -> None:
        # Soft ellipse centred at (s0, d0) with its long axis along (along_s, along_d).
        radius = half_length + 0.5
        i0 = max(int((s0 - radius) / _SHADOW_STEP_S), 0)
        i1 = min(int((s0 + radius) / _SHADOW_STEP_S) + 1, count_s)
        j0 = max(int((d0 - radius - _SHADOW_D_RANGE[0]) / _SHADOW_STEP_D), 0)
        j1 = min(int((d0 + radius - _SHADOW_D_RANGE[0]) / _SHADOW_STEP_D) + 1, count_d)
        if i0 >= i1 or j0 >= j1:
            return
        ds = np.arange(i0, i1)[:, None] * _SHADOW_STEP_S - s0  # (n_s, 1)
        dd = np.arange(j0, j1)[None, :] * _SHADOW_STEP_D + _SHADOW_D_RANGE[0] - d0  # (1, n_d)
        u = (ds * along_s + dd * along_d) / half_length
        v = (-ds * along_d + dd * along_s) / half_width
        inside = np.clip((1.0 - np.sqrt(u * u + v * v)) * 4.0, 0.0, 1.0)  # soft rim
        shade[i0:i1, j0:j1] *= 1.0 - opacity * inside

    # Shadow direction in road coordinates (along s, along d), away from the sun.
    _, _, heading, _ = centreline.sample(objects.s)
    relative = appearance.sun_azimuth + math.pi - heading
    along_s_all, along_d_all = np.cos(relative), np.sin(relative)
    opacity = rng.uniform(0.7, 1.0, len(objects.s))  # light through the foliage

    for index in range(len(objects.s)):
        s0, d0 = objects.s[index], objects.d[index]
        along_s, along_d = along_s_all[index], along_d_all[index]
        height, radius = objects.height[index], objects.radius[index]
        if objects.kind[index] == 0:
            # Crown: an ellipse stretched by the low sun, centred below the crown's centre.
            shift = (height - radius) * reach
            stamp(s0 + along_s * shift, d0 + along_d * shift, along_s, along_d,
                  radius * stretch, radius, opacity[index])
            # Trunk: a thin shadow from the base to the crown's shadow.
            trunk = 0.5 * (height - 2.0 * radius) * reach
            stamp(s0 + along_s * trunk, d0 + along_d * trunk, along_s, along_d,
                  max(trunk, 0.3), objects.trunk[index], 0.9)
        else:
            half = 0.5 * height * reach
            stamp(s0 + along_s * half, d0 + along_d * half, along_s, along_d, half,
                  radius, 0.9)

    # Buildings beside the road: bands of shadow across the whole road, about one per km.
    for s_band in rng.uniform(0, centreline.length, rng.poisson(centreline.length / 1000.0)):
        width = rng.uniform(4.0, 14.0)
        i0 = max(int((s_band - 0.5 * width) / _SHADOW_STEP_S), 0)
        i1 = min(int((s_band + 0.5 * width) / _SHADOW_STEP_S), count_s)
        shade[i0:i1, :] *= 1.0 - rng.uniform(0.8, 1.0)

    # Keep the outermost columns lit: pixels beyond the map read them.
    shade[:, 0] = 1.0
    shade[:, -1] = 1.0
    return np.clip(shade, 0.0, 1.0)


@dataclass
class _Primitives:
    """Shapes to paint, one entry per shape. A bar spans columns ``centre_u -+ half`` and rows
    ``centre_v`` to ``bottom``; a disc has centre ``(centre_u, centre_v)`` and radius ``half``.
    Coordinates are continuous pixel units: pixel ``(r, c)`` covers ``[r, r+1) x [c, c+1)``."""

    disc: np.ndarray
    centre_u: np.ndarray
    centre_v: np.ndarray
    half: np.ndarray
    bottom: np.ndarray
    colour: np.ndarray
    order: np.ndarray
    """Painting order: a higher value covers a lower one."""


def _paint(frame: np.ndarray, shapes: _Primitives) -> None:
    """Blend anti-aliased bars and discs into ``frame`` in one vectorised pass.

    Every shape is blended over the frame as it was before this call; where shapes overlap,
    the pixel takes the shape with the highest ``order``. Discs are shaded lighter at the top,
    like a sunlit tree crown.
    """
    height, width, _ = frame.shape
    if len(shapes.disc) == 0:
        return

    # Bounding box of each shape, clipped to the image.
    centre_u = shapes.centre_u.astype(np.float32)
    centre_v = shapes.centre_v.astype(np.float32)
    half = shapes.half.astype(np.float32)
    margin = np.where(shapes.disc, np.float32(1.0), np.float32(0.0))
    first_column = np.clip(np.floor(centre_u - half - margin), 0, width).astype(np.int32)
    last_column = np.clip(np.ceil(centre_u + half + margin), 0, width).astype(np.int32)
    top = np.where(shapes.disc, np.floor(centre_v - half - 1.0), np.round(centre_v))
    bottom = np.where(shapes.disc, np.ceil(centre_v + half + 1.0), np.round(shapes.bottom))
    first_row = np.clip(top, 0, height).astype(np.int32)
    last_row = np.clip(bottom, 0, height).astype(np.int32)
    box_width = np.maximum(last_column - first_column, 0)
    box_height = np.maximum(last_row - first_row, 0)
    counts = box_width * box_height  # (K,)
    total = int(counts.sum())
    if total == 0:
        return

    # Every pixel of every box: its shape, and its row and column from the index within the
    # box (a float division, exact for these sizes, is faster than an integer one).
    shape = np.repeat(np.arange(len(counts), dtype=np.int32), counts)  # (P,)
    local = np.arange(total, dtype=np.int32) - np.repeat(np.cumsum(counts) - counts, counts)
    widths = box_width.take(shape)
    box_row = np.floor((local + 0.5) / widths.astype(np.float32)).astype(np.int32)
    rows = first_row.take(shape) + box_row
    columns = first_column.take(shape) + (local - box_row * widths)

    # Coverage: column overlap for bars, distance to the rim for discs.
    u = centre_u.take(shape)
    radius = half.take(shape)
    left = columns.astype(np.float32)
    overlap = np.minimum(left + 1.0, u + radius) - np.maximum(left, u - radius)
    dv = rows.astype(np.float32) + np.float32(0.5) - centre_v.take(shape)
    du = left + np.float32(0.5) - u
    rim = radius + np.float32(0.5) - np.sqrt(dv * dv + du * du)
    is_disc = shapes.disc.take(shape)
    coverage = np.where(is_disc, rim, overlap)
    np.minimum(coverage, 1.0, out=coverage)
    keep = np.nonzero(coverage > 0.0)[0]  # (E,) entries that paint something
    if len(keep) == 0:
        return
    shape, coverage, dv, radius, is_disc = (
        values.take(keep) for values in (shape, coverage, dv, radius, is_disc))
    pixel = (rows.take(keep) * width + columns.take(keep)).astype(np.int32)
    order = shapes.order.astype(np.int32).take(shape)

    # Per pixel, find the uppermost entry and the one below it with a z-buffer of orders
    # (each shape has a distinct order and covers a pixel at most once).
    uppermost = np.full(height * width, -1, dtype=np.int32)
    np.maximum.at(uppermost, pixel, order)
    on_top = order == uppermost.take(pixel)
    second = np.full(height * width, -1, dtype=np.int32)
    np.maximum.at(second, pixel[~on_top], order[~on_top])
    below = ~on_top & (order == second.take(pixel))

    # Blend the second shape of each pixel, then the uppermost one over it: the
    # anti-aliased rim of a near crown then shows the far crown behind it, not the sky.
    # Pixels are addressed as flat elements (3 per pixel), which numpy indexes faster than
    # rows of a 2-D array.
    shading = np.where(is_disc, 1.1 - 0.25 * np.clip(dv / np.maximum(radius, 0.5), -1.0, 1.0),
                       1.0).astype(np.float32)
    flat = frame.reshape(-1)  # (H * W * 3,)
    channels = np.arange(3, dtype=np.int32)
    for layer in (below, on_top):
        elements = (pixel[layer][:, None] * 3 + channels).ravel()  # (N * 3,)
        colour = shapes.colour.take(shape[layer], axis=0) * shading[layer, None]  # (N, 3)
        blended = flat.take(elements).reshape(-1, 3)
        blended += coverage[layer, None] * (colour - blended)
        flat[elements] = blended.ravel()


def _clip_in_place(values: np.ndarray, low: float, high: float) -> None:
    # np.clip goes through a Python wrapper; two ufunc calls are faster on small arrays.
    np.maximum(values, low, out=values)
    np.minimum(values, high, out=values)


class RoadRenderer:
    """Render frames of a road for one :class:`CameraConfig`.

    Construct once per camera (the ground rays and texture indices are computed here), call
    :meth:`set_scene` at the start of each episode, then :meth:`render` for every frame.
    """

    def __init__(self, camera: CameraConfig | None = None, texture_seed: int = 0) -> None:
        self.camera = camera or CameraConfig()
        self.rays = GroundRays(self.camera)
        rays = self.rays
        rows, width = rays.lateral.shape

        # Mip level per ground row: the level whose texel matches the pixel footprint.
        pyramid = noise_texture_pyramid(texture_seed)
        self._texture = np.concatenate([level.ravel() for level in pyramid])
        offsets = np.cumsum([0] + [level.size for level in pyramid])
        footprint = np.maximum(rays.footprint_lateral, rays.footprint_forward)  # (R,)
        level = np.clip(np.floor(np.log2(footprint / _TEXEL) + 0.5), 0, len(pyramid) - 1)
        level = level.astype(np.int32)
        self._mip_shift = level[:, None]  # (R, 1)
        self._mip_mask = ((_TEXTURE_SIZE >> level) - 1).astype(np.int32)[:, None]  # (R, 1)
        self._mip_size = (_TEXTURE_SIZE >> level).astype(np.int32)[:, None]  # (R, 1)
        self._mip_base = offsets[level].astype(np.int32)[:, None]  # (R, 1)

        # Footprints for anti-aliasing: lateral per pixel, along the road per row.
        self._footprint_d = rays.footprint_d  # (R, W)
        self._footprint_s = rays.footprint_forward[:, None]  # (R, 1)
        self._sky_rows = rays.first_ground_row
        self._frame = np.empty((self.camera.image_height, width, 3), dtype=np.float32)
        self._scene: Scenery | None = None
        self._centreline: Centreline | None = None

    def set_scene(self, centreline: Centreline, scenery: Scenery) -> None:
        """Prepare the per-episode constants for ``centreline`` drawn with ``scenery``."""
        self._centreline = centreline
        self._scene = scenery
        look = scenery.appearance
        rays = self.rays

        # Marking coverage of a pixel of lateral footprint p by a line of half width h at
        # distance x from its centre: clip((h + p/2 - x) / p, 0, min(1, 2h/p)).
        half = 0.5 * look.line_width
        footprint = self._footprint_d
        self._line_offset = (half + 0.5 * footprint) / footprint  # (R, W)
        self._line_slope = 1.0 / footprint  # (R, W)
        self._line_cap = np.minimum(1.0, 2.0 * half / footprint)  # (R, W)

        # The same for dashes along s, blending to the mean duty cycle once a pixel covers
        # more than half a dash period.
        dash_half = 0.5 * look.dash_length
        along = self._footprint_s
        self._dash_offset = (dash_half + 0.5 * along) / along  # (R, 1)
        self._dash_slope = 1.0 / along  # (R, 1)
        self._dash_cap = np.minimum(1.0, 2.0 * dash_half / along)  # (R, 1)
        self._dash_mix = np.clip(2.0 * along / look.dash_period - 1.0, 0.0, 1.0)  # (R, 1)

        # Haze: share of the horizon colour at each pixel's range.
        self._haze = (1.0 - np.exp(-rays.range / look.visibility)).astype(np.float32)
        self._haze = self._haze[:, :, None]  # (R, W, 1)

        # Sky band: colour per row, from the horizon colour to the zenith colour.
        elevation = np.clip(rays.sky_elevation / math.radians(30.0), 0.0, 1.0)[:, None]
        horizon = np.asarray(look.sky_horizon, dtype=np.float32)
        zenith = np.asarray(look.sky_zenith, dtype=np.float32)
        self._sky_colour = (horizon + elevation * (zenith - horizon))[:, None, :]  # (S, 1, 3)
        hill_haze = 1.0 - math.exp(-3000.0 / look.visibility)
        hills = np.asarray(look.hills, dtype=np.float32)
        self._hill_colour = hills + hill_haze * (horizon - hills)  # (3,)
        self._texture_origin = (
            _TEXTURE_ORIGIN + scenery.texture_offset[0],
            _TEXTURE_ORIGIN + scenery.texture_offset[1],
        )

    def render(self, x: float, y: float, yaw: float, s: float) -> np.ndarray:
        """Render the view of a camera at ``(x, y)`` with heading ``yaw``.

        Arguments:
            x, y: camera position in metres.
            yaw: heading of the optical axis in radians.
            s: arc length of the camera's projection on the centreline, in metres.

        Returns:
            A new ``(H, W, 3)`` uint8 RGB frame.
        """
        if self._scene is None or self._centreline is None:
            raise RuntimeError("RoadRenderer.render called before set_scene; call it first")
        look = self._scene.appearance
        frame = self._frame
        ground = frame[self._sky_rows:]
        exposure = look.exposure

        row_c, row_cos, row_sin, row_s = self._rows(x, y, yaw, s)
        d, s_pixel = self._road_coordinates(row_c, row_cos, row_sin, row_s)

        # Surface: asphalt (shoulders included) or verge, with an anti-aliased edge.
        lane = look.lane_width
        half_road = lane + look.shoulder
        asphalt = np.abs(d - 0.5 * lane)
        np.subtract(half_road, asphalt, out=asphalt)
        asphalt *= self._line_slope
        asphalt += 0.5
        _clip_in_place(asphalt, 0.0, 1.0)  # (R, W), 1 on asphalt

        marking = self._markings(d, s_pixel, look)  # (R, W) coverage, line index
        texture = self._texture_at(s_pixel, d)  # (R, W), zero mean

        # Light: ambient plus direct sunlight where no shadow falls, dimmed by clouds.
        light = self._sunlight(s_pixel, d, row_s, look)  # (R, W)

        # Albedo modulated by texture, whose contrast differs between asphalt and verge.
        contrast = asphalt * (look.asphalt_texture - look.verge_texture)
        contrast += look.verge_texture
        texture *= contrast
        texture += 1.0
        texture *= light
        texture *= exposure

        verge = np.asarray(look.verge, dtype=np.float32)
        tarmac = np.asarray(look.asphalt, dtype=np.float32)
        np.multiply(asphalt[:, :, None], tarmac - verge, out=ground)
        ground += verge
        coverage, is_centre = marking
        paint = np.where(
            is_centre[:, :, None],
            np.asarray(look.centre_line, dtype=np.float32),
            np.asarray(look.edge_line, dtype=np.float32),
        )
        paint -= ground
        paint *= coverage[:, :, None]
        ground += paint
        ground *= texture[:, :, None]

        # Haze towards the horizon colour.
        haze_colour = np.asarray(look.sky_horizon, dtype=np.float32) * exposure
        haze = haze_colour - ground
        haze *= self._haze
        ground += haze

        self._draw_sky(frame, yaw, exposure)
        self._draw_objects(frame, x, y, yaw, s, look)
        _clip_in_place(frame, 0.0, 1.0)
        frame *= 255.0
        frame += 0.5
        return frame.astype(np.uint8)

    # Steps of render -------------------------------------------------------------------

    def _rows(
        self, x: float, y: float, yaw: float, s: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Locate the centreline on each ground row: lateral position, direction, arc length."""
        centreline = self._centreline
        step = centreline.step
        reach = self.camera.view_distance * 1.2 + 10.0

        # Centreline samples from 5 m behind to beyond the view distance, every 0.5 m.
        stride = max(int(round(0.5 / step)), 1)
        first = int((s - 5.0) / step)
        index = np.arange(first, first + int(reach / step), stride)
        if centreline.closed:
            index = np.mod(index, len(centreline))
        else:
            index = np.clip(index, 0, len(centreline) - 1)

        # Into the camera frame: forward F and left L.
        cos_y, sin_y = math.cos(yaw), math.sin(yaw)
        dx = centreline.x[index] - x
        dy = centreline.y[index] - y
        forward = dx * cos_y + dy * sin_y
        left = -dx * sin_y + dy * cos_y
        direction = centreline.heading[index] - yaw
        arc = (first + np.arange(len(index)) * stride) * step  # unwrapped arc length

        # Rows are found by forward distance, so F must increase along the samples. Where the
        # road turns beyond 90 degrees from the view direction, hold the last reachable point.
        forward = np.maximum.accumulate(forward)
        rows_f = self.rays.forward
        row_c = np.interp(rows_f, forward, left).astype(np.float32)
        row_phi = np.interp(rows_f, forward, direction)
        row_s = np.interp(rows_f, forward, arc).astype(np.float32)
        return row_c, np.cos(row_phi).astype(np.float32), np.sin(row_phi).astype(
            np.float32), row_s

    def _road_coordinates(
        self, row_c: np.ndarray, row_cos: np.ndarray, row_sin: np.ndarray, row_s: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lateral offset ``d`` from the lane centre and arc length ``s`` of every pixel."""
        offset = self.rays.lateral - row_c[:, None]  # (R, W)
        d = offset * row_cos[:, None]  # (R, W)
        offset *= row_sin[:, None]
        offset += row_s[:, None]  # (R, W) arc length
        return d, offset

    def _markings(
        self, d: np.ndarray, s: np.ndarray, look: Appearance
    ) -> tuple[np.ndarray, np.ndarray]:
        """Paint coverage of each pixel, and whether the nearest line is the centre line."""
        lane = look.lane_width

        # Lines at d = -w/2 + k w for k = 0 (right edge), 1 (centre), 2 (left edge).
        position = d + 0.5 * lane
        position *= 1.0 / lane
        line = np.rint(position)
        _clip_in_place(line, 0.0, 2.0)
        distance = position - line
        distance *= lane
        np.abs(distance, out=distance)
        coverage = distance
        coverage *= -self._line_slope
        coverage += self._line_offset
        np.maximum(coverage, 0.0, out=coverage)
        np.minimum(coverage, self._line_cap, out=coverage)
        is_centre = line == 1.0

        if not look.centre_solid:
            # Dashes: distance along s from the middle of the nearest dash.
            period = look.dash_period
            along = s - 0.5 * look.dash_length
            along *= 1.0 / period
            along -= np.rint(along)
            along *= period
            np.abs(along, out=along)
            along *= -self._dash_slope
            along += self._dash_offset
            np.maximum(along, 0.0, out=along)
            np.minimum(along, self._dash_cap, out=along)
            along += self._dash_mix * (look.dash_length / period - along)
            coverage *= np.where(is_centre, along, 1.0)

        if look.marking_wear > 0:
            # Worn paint: patches of missing paint from the coarse texture.
            worn = self._texture_at(s * 0.25, d * 4.0 + 17.0)
            worn *= 0.5 * look.marking_wear
            worn += 1.0 - 0.5 * look.marking_wear
            _clip_in_place(worn, 0.0, 1.0)
            coverage *= worn
        return coverage, is_centre

    def _texture_at(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Mip-mapped noise texture at road coordinates ``(s, d)`` in metres."""
        origin_s, origin_d = self._texture_origin
        row = (s + origin_s) * (1.0 / _TEXEL)
        i = row.astype(np.int32)
        column = (d + origin_d) * (1.0 / _TEXEL)
        j = column.astype(np.int32)
        np.right_shift(i, self._mip_shift, out=i)
        np.bitwise_and(i, self._mip_mask, out=i)
        i *= self._mip_size
        np.right_shift(j, self._mip_shift, out=j)
        np.bitwise_and(j, self._mip_mask, out=j)
        i += j
        i += self._mip_base
        return self._texture.take(i)

    def _sunlight(
        self, s: np.ndarray, d: np.ndarray, row_s: np.ndarray, look: Appearance
    ) -> np.ndarray:
        """Light reaching each pixel's ground point: ambient plus unshadowed direct light."""
        shadow = self._scene.shadow
        count_s, count_d = shadow.shape
        i = s * (1.0 / _SHADOW_STEP_S)
        i = i.astype(np.int32)
        _clip_in_place(i, 0, count_s - 1)
        j = (d - _SHADOW_D_RANGE[0]) * (1.0 / _SHADOW_STEP_D)
        j = j.astype(np.int32)
        _clip_in_place(j, 0, count_d - 1)
        i *= count_d
        i += j
        light = shadow.take(i)  # (R, W)

        # Cloud shadows vary slowly, so one value per row is enough.
        clouds = self._scene.cloud_profile
        cloud = np.interp(row_s, np.arange(len(clouds)) * 10.0, clouds).astype(np.float32)
        light *= ((1.0 - look.ambient) * cloud)[:, None]
        light += look.ambient
        return light

    def _draw_objects(
        self, frame: np.ndarray, x: float, y: float, yaw: float, s: float, look: Appearance
    ) -> None:
        """Draw the trees and poles in view, from the furthest to the nearest.

        A point at forward distance ``F``, left ``L`` and height ``z`` projects, with camera
        height ``h`` and pitch ``theta``, to depth ``F cos(theta) - (z - h) sin(theta)``, column
        ``c_u - f L / depth`` and row ``c_v + f (-F sin(theta) - (z - h) cos(theta)) / depth``.
        """
        objects = self._scene.objects
        camera = self.camera
        first, last = np.searchsorted(objects.s, [s - 10.0, s + camera.view_distance])
        if first == last:
            return
        view = slice(first, last)

        # Camera frame: forward and left, in metres; keep objects ahead of the camera.
        cos_y, sin_y = math.cos(yaw), math.sin(yaw)
        dx = objects.x[view] - x
        dy = objects.y[view] - y
        forward = dx * cos_y + dy * sin_y
        left = -dx * sin_y + dy * cos_y
        ahead = np.nonzero(forward > 2.0)[0]
        if len(ahead) == 0:
            return
        forward, left = forward[ahead], left[ahead]
        index = ahead + first

        focal = camera.focal_length
        theta = math.radians(camera.pitch_deg)
        height = camera.mount_height
        centre_u = 0.5 * camera.image_width
        centre_v = 0.5 * camera.image_height

        def depth(z: np.ndarray) -> np.ndarray:
            return forward * math.cos(theta) - (z - height) * math.sin(theta)

        def row(z: np.ndarray) -> np.ndarray:
            return centre_v + focal * (
                -forward * math.sin(theta) - (z - height) * math.cos(theta)) / depth(z)

        top = objects.height[index]
        radius = objects.radius[index]
        is_tree = objects.kind[index] == 0
        crown_centre = np.where(is_tree, top - radius, 0.5 * top)
        scale = focal / depth(crown_centre)
        column = centre_u - left * scale
        ground_row = row(np.zeros_like(top))
        crown_row = row(crown_centre)
        top_row = row(top)
        radius_px = radius * scale
        trunk_px = objects.trunk[index] * focal / depth(np.zeros_like(top))
        visible = (column + radius_px > 0) & (column - radius_px < camera.image_width)

        # Light and haze per object.
        distance = np.hypot(forward, left)
        haze = 1.0 - np.exp(-distance / look.visibility)
        light = look.exposure * (look.ambient + 0.85 * (1.0 - look.ambient))
        horizon = np.asarray(look.sky_horizon, dtype=np.float32) * look.exposure
        colours = objects.colour[index] * light
        colours += haze[:, None] * (horizon - colours)
        trunk_colour = np.float32(light) * np.array([0.22, 0.17, 0.12], dtype=np.float32)

        # One bar (trunk or pole) per object and one disc (crown) per tree, painted from the
        # furthest to the nearest. A tree's crown goes over its trunk.
        rank = np.empty(len(forward), dtype=np.int64)
        rank[np.argsort(-forward)] = np.arange(len(forward))
        trunk_colours = trunk_colour + haze[:, None].astype(np.float32) * (horizon - trunk_colour)
        bar_top = np.where(is_tree, crown_row, top_row)
        bar_half = np.where(is_tree, trunk_px, radius_px)
        bar_colour = np.where(is_tree[:, None], trunk_colours, colours)
        trees = np.nonzero(is_tree & visible)[0]
        bars = np.nonzero(visible)[0]
        primitives = _Primitives(
            disc=np.concatenate([np.zeros(len(bars), bool), np.ones(len(trees), bool)]),
            centre_u=np.concatenate([column[bars], column[trees]]),
            centre_v=np.concatenate([bar_top[bars], crown_row[trees]]),
            half=np.concatenate([bar_half[bars], radius_px[trees]]),
            bottom=np.concatenate([ground_row[bars], crown_row[trees]]),
            colour=np.concatenate([bar_colour[bars], colours[trees]]).astype(np.float32),
            order=np.concatenate([2 * rank[bars], 2 * rank[trees] + 1]),
        )
        _paint(frame, primitives)

    def _draw_sky(self, frame: np.ndarray, yaw: float, exposure: float) -> None:
        """Fill the sky band with the sky gradient and the hills on the horizon."""
        sky = frame[: self._sky_rows]
        if sky.shape[0] == 0:
            return
        azimuth = np.degrees(yaw + self.rays.column_azimuth) % 360.0  # (W,)
        profile = self._scene.hill_profile
        hill_top = np.interp(azimuth, np.arange(361.0), np.append(profile, profile[0]))
        below = self.rays.sky_elevation[:, None] < hill_top[None, :]  # (S, W)
        np.copyto(sky, self._sky_colour * exposure)
        sky[below] = self._hill_colour * exposure
