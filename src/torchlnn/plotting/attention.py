"""Draw attention maps over camera frames: overlays, grids and animations."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from torchlnn.analysis.activity import to_numpy

from ._figure import finish, new_figure, require_matplotlib


def frame_to_rgb(frame) -> np.ndarray:
    """Return one frame as float RGB (H, W, 3) in [0, 1].

    Accepts (C, H, W) or (H, W, C) with C = 1 or 3, float in [0, 1] (clipped for display) or
    uint8 in [0, 255], as a tensor or an array; or a grey (H, W) image.
    """
    is_uint8 = getattr(frame, "dtype", None) in (np.uint8, "uint8") or str(
        getattr(frame, "dtype", "")
    ) == "torch.uint8"
    image = to_numpy(frame)
    if is_uint8:
        image = image / 255.0
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"a frame must have shape (C, H, W) or (H, W, C), got {image.shape}.")
    if image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)  # (C, H, W) -> (H, W, C)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[-1] != 3:
        raise ValueError(f"a frame must have 1 or 3 channels, got shape {image.shape}.")
    return np.clip(image, 0.0, 1.0)


def overlay_attention(
    frame,
    attention,
    *,
    alpha: float = 0.6,
    colormap: str = "jet",
) -> np.ndarray:
    """Blend an attention map over a frame and return uint8 RGB (H, W, 3).

    Each pixel becomes ``(1 - alpha * a) * frame + alpha * a * colormap(a)`` for its attention
    ``a`` in [0, 1], so pixels the model ignores keep their colour and attended pixels take the
    colormap's colour.

    Args:
        frame: (C, H, W) or (H, W, C), float in [0, 1] or uint8.
        attention: (H, W), values in [0, 1] (as the analysis functions return them).
        alpha: the strength of the overlay at full attention, in [0, 1].
        colormap: a matplotlib colormap name.
    """
    require_matplotlib()
    from matplotlib import colormaps

    image = frame_to_rgb(frame)
    weight = np.clip(to_numpy(attention), 0.0, 1.0)
    if weight.shape != image.shape[:2]:
        raise ValueError(
            f"the attention map {weight.shape} must have the frame's size {image.shape[:2]}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    heat = colormaps[colormap](weight)[..., :3]  # (H, W, 3)
    blend = (alpha * weight)[..., None]
    mixed = (1.0 - blend) * image + blend * heat
    return np.round(mixed * 255).astype(np.uint8)


def _named_maps(maps) -> dict[str, np.ndarray]:
    if isinstance(maps, Mapping):
        return {str(name): to_numpy(value) for name, value in maps.items()}
    return {"attention": to_numpy(maps)}


def _sequence_frames(frames) -> list[np.ndarray]:
    frames_array = frames
    if hasattr(frames_array, "shape") and len(frames_array.shape) == 5:
        raise ValueError(
            f"pass one sequence of frames, (T, C, H, W) or (T, H, W, C), not a batch of shape "
            f"{tuple(frames_array.shape)}: select one with frames[b]."
        )
    return [frame_to_rgb(frame) for frame in frames]


def plot_attention(
    frames,
    maps,
    *,
    indices: Sequence[int] | None = None,
    columns: int = 6,
    alpha: float = 0.6,
    outputs: np.ndarray | None = None,
    path: str | os.PathLike | None = None,
):
    """Draw frames of a sequence with their attention overlays in a grid.

    The first row shows the frames, each following row one attention method.

    Args:
        frames: one sequence, (T, C, H, W) or (T, H, W, C).
        maps: (T, H, W) maps in [0, 1], or a dict of them by method name, e.g.
            ``{"VisualBackProp": ..., "SmoothGrad": ...}``.
        indices: the steps to show (default ``columns`` steps evenly spaced).
        columns: the number of steps shown when ``indices`` is None.
        alpha: the overlay strength.
        outputs: (T,) the model's output at each step, written under each frame.
        path: save the figure there when given.
    """
    images = _sequence_frames(frames)
    named = _named_maps(maps)
    steps = len(images)
    for name, value in named.items():
        if value.shape[0] != steps:
            raise ValueError(
                f"maps {name!r} has {value.shape[0]} steps but there are {steps} frames."
            )
    if indices is None:
        indices = np.unique(np.linspace(0, steps - 1, min(columns, steps)).round().astype(int))
    indices = list(indices)
    height, width = images[0].shape[:2]
    panel = 2.0
    figure, axes = new_figure(
        panel * len(indices) + 1.0, (panel * height / width + 0.35) * (len(named) + 1) + 0.3,
        rows=len(named) + 1, columns=len(indices),
    )
    for column, step in enumerate(indices):
        ax = axes[0, column]
        ax.imshow(images[step])
        caption = f"step {step}"
        if outputs is not None:
            caption += f"\noutput {float(np.ravel(to_numpy(outputs))[step]):+.3f}"
        ax.set_title(caption, fontsize=8)
        for row, (name, value) in enumerate(named.items(), start=1):
            axes[row, column].imshow(overlay_attention(images[step], value[step], alpha=alpha))
            if column == 0:
                axes[row, column].set_ylabel(name, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("frame", fontsize=9)
    return finish(figure, path)


def attention_video_frames(
    frames,
    maps,
    *,
    outputs: np.ndarray | None = None,
    alpha: float = 0.6,
    min_height: int = 160,
) -> np.ndarray:
    """Compose the frames of an attention animation, uint8 (T, H', W', 3).

    Each animation frame puts the camera frame and one overlay per method side by side,
    enlarged by an integer factor to at least ``min_height`` pixels. With ``outputs`` a bar
    under the images shows the output at each step, from the centre, scaled so that the
    largest magnitude fills half the width (leftward for negative values).

    Args:
        frames: one sequence, (T, C, H, W) or (T, H, W, C).
        maps: (T, H, W) or a dict of them by method name.
        outputs: (T,) the model's output at each step, such as the steering curvature.
        alpha: the overlay strength.
        min_height: the minimum height of the images in the animation, in pixels.
    """
    images = _sequence_frames(frames)
    named = _named_maps(maps)
    height = images[0].shape[0]
    scale = max(1, int(np.ceil(min_height / height)))
    values = None
    if outputs is not None:
        values = np.ravel(to_numpy(outputs))
        if len(values) != len(images):
            raise ValueError(
                f"outputs has {len(values)} values but there are {len(images)} frames."
            )
    largest = float(np.max(np.abs(values))) if values is not None else 0.0

    video = []
    for step, image in enumerate(images):
        panels = [np.round(image * 255).astype(np.uint8)]
        panels += [overlay_attention(image, value[step], alpha=alpha) for value in named.values()]
        gap = np.full((image.shape[0], 1, 3), 255, dtype=np.uint8)
        row = np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1)
        row = row.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest-neighbour enlargement
        if values is not None:
            bar = np.full((max(8, scale * 4), row.shape[1], 3), 255, dtype=np.uint8)
            centre = row.shape[1] // 2
            reach = 0 if largest == 0 else int(round(values[step] / largest * (centre - 1)))
            low, high = sorted((centre, centre + reach))
            bar[1:-1, low : high + 1] = (33, 113, 181)
            bar[:, centre] = 0
            row = np.concatenate([row, bar], axis=0)
        video.append(row)
    return np.stack(video)


def write_attention_animation(
    frames,
    maps,
    path: str | os.PathLike,
    *,
    outputs: np.ndarray | None = None,
    fps: float = 10.0,
    alpha: float = 0.6,
    min_height: int = 160,
) -> np.ndarray:
    """Write an animated GIF (or MP4) of a driven sequence with its attention maps.

    The frames are composed by ``attention_video_frames``. A ``.gif`` path is written with
    imageio's Pillow plugin (the ``viz`` extra); ``.mp4`` needs the ``imageio-ffmpeg`` or
    ``av`` package as well. Returns the composed frames, uint8 (T, H', W', 3).
    """
    try:
        import imageio.v3 as iio
    except ImportError as error:
        raise ImportError(
            "writing an animation needs imageio. Install it with: pip install 'torchlnn[viz]'"
        ) from error
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"path must end in .gif or .mp4, got {os.fspath(path)!r}.")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}.")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot write {os.fspath(path)!r}: the folder {folder!r} does not exist."
        )
    video = attention_video_frames(frames, maps, outputs=outputs, alpha=alpha,
                                   min_height=min_height)
    if suffix == ".gif":
        iio.imwrite(path, video, extension=".gif", duration=1000.0 / fps, loop=0)
        return video

    import importlib.util

    encoders = [importlib.util.find_spec(name) for name in ("imageio_ffmpeg", "av")]
    if not any(encoders):
        raise ImportError(
            "writing an MP4 needs a video encoder: pip install imageio-ffmpeg (or av), or write "
            "a .gif instead."
        )
    even = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]  # H.264 needs even sizes
    iio.imwrite(path, even, extension=".mp4", fps=fps)
    return video
