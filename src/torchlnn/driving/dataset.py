"""A PyTorch dataset of windows of consecutive frames from collected driving episodes.

:class:`DrivingWindows` reads a folder written by :func:`torchlnn.driving.collect.collect` and
serves windows of ``window`` consecutive frames (16 by default, as in the neural circuit policy
paper) from within one episode, never across two. Item ``i`` is a pair

- ``frames``: float32 tensor ``(T, 3, H, W)``, RGB in ``[0, 1]`` (channels first, as
  convolutions expect; :func:`frames_to_tensor` does the same conversion for frames coming
  from an environment),
- ``labels``: float32 tensor ``(T, 1)``, the label of each frame (by default ``command``, the
  expert's curvature in 1/m).

Episodes are split into training and validation sets whole, with :func:`split_episodes`, so
that no road appears in both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from torchlnn.driving.collect import read_manifest

__all__ = ["DrivingWindows", "frames_to_tensor", "split_episodes", "LABEL_KEYS"]

LABEL_KEYS = ("command", "executed", "road_curvature", "lateral_offset", "heading_error")
"""Per-frame arrays of a shard that can serve as labels."""


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Convert frames ``(..., H, W, 3)`` to a float32 tensor ``(..., 3, H, W)``.

    uint8 frames are scaled to ``[0, 1]``; float frames (already in ``[0, 1]``, possibly
    perturbed) are kept as they are.
    """
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames of shape (..., H, W, 3), got {frames.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(frames))
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.float32).div_(255.0)
    else:
        tensor = tensor.to(torch.float32)
    return tensor.movedim(-1, -3)  # (..., H, W, 3) -> (..., 3, H, W)


def split_episodes(
    root: str | Path, validation_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split the episode indices of a collection into training and validation lists.

    At least one episode goes to each side when there are two or more.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must lie in [0, 1), got {validation_fraction}"
        )
    indices = [entry["index"] for entry in read_manifest(root)["episodes"]]
    order = np.random.default_rng(seed).permutation(len(indices))
    count = int(round(validation_fraction * len(indices)))
    if validation_fraction > 0 and len(indices) >= 2:
        count = min(max(count, 1), len(indices) - 1)
    validation = sorted(indices[i] for i in order[:count])
    training = sorted(indices[i] for i in order[count:])
    return training, validation


class DrivingWindows(Dataset):
    """Windows of consecutive frames and their labels from a collection folder.

    Arguments:
        root: folder with ``manifest.json`` and the episode shards.
        window: frames per window ``T``.
        stride: frames between the starts of consecutive windows of an episode.
        episodes: episode indices to use (see :func:`split_episodes`); ``None`` uses all.
        label: which per-frame array is the label, one of :data:`LABEL_KEYS`.
        transform: optional function applied to each window's frames as a float32 numpy
            array ``(T, H, W, 3)`` in ``[0, 1]`` before conversion to a tensor, for example a
            perturbation from :mod:`torchlnn.driving.perturbations` used as augmentation.
        preload: decompress every episode into memory at construction (fast access; about
            47 KB per 78 x 200 frame). Otherwise episodes are read on demand and the
            ``cache_episodes`` most recent ones are kept.
        cache_episodes: episodes kept in memory when ``preload`` is false.
    """

    def __init__(
        self,
        root: str | Path,
        window: int = 16,
        stride: int = 1,
        episodes: Sequence[int] | None = None,
        label: str = "command",
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        preload: bool = True,
        cache_episodes: int = 8,
    ) -> None:
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
        if label not in LABEL_KEYS:
            raise ValueError(f"label must be one of {LABEL_KEYS}, got {label!r}")
        self.root = Path(root)
        self.window = window
        self.stride = stride
        self.label = label
        self.transform = transform
        manifest = read_manifest(self.root)
        self.manifest = manifest

        by_index = {entry["index"]: entry for entry in manifest["episodes"]}
        if episodes is None:
            chosen = sorted(by_index)
        else:
            chosen = list(episodes)
            unknown = sorted(set(chosen) - set(by_index))
            if unknown:
                raise ValueError(
                    f"episodes {unknown} are not in {self.root / 'manifest.json'}; it lists "
                    f"{len(by_index)} episodes"
                )
        self.episodes = [by_index[index] for index in chosen]

        # (episode position, first frame) of every window.
        starts = []
        for position, entry in enumerate(self.episodes):
            for first in range(0, entry["frames"] - window + 1, stride):
                starts.append((position, first))
        self.index = np.asarray(starts, dtype=np.int64).reshape(-1, 2)  # (N, 2)

        self._load = functools.lru_cache(maxsize=cache_episodes)(self._read_episode)
        self._preloaded: list[tuple[np.ndarray, np.ndarray]] | None = None
        if preload:
            self._preloaded = [self._read_episode(position)
                               for position in range(len(self.episodes))]

    def __repr__(self) -> str:
        return (
            f"DrivingWindows({str(self.root)!r}, episodes={len(self.episodes)}, "
            f"windows={len(self)}, window={self.window}, stride={self.stride}, "
            f"label={self.label!r})"
        )

    def __len__(self) -> int:
        return len(self.index)

    def _read_episode(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        entry = self.episodes[position]
        with np.load(self.root / entry["file"]) as shard:
            frames = shard["frames"]
            labels = shard[self.label].astype(np.float32)
        return frames, labels

    def episode_arrays(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``(T_e, H, W, 3)`` uint8 and labels ``(T_e,)`` of the episode at
        ``position`` in :attr:`episodes`."""
        if self._preloaded is not None:
            return self._preloaded[position]
        return self._load(position)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"window {item} out of range for {len(self)} windows")
        position, first = self.index[item]
        frames, labels = self.episode_arrays(int(position))
        clip = frames[first:first + self.window]  # (T, H, W, 3) uint8
        target = labels[first:first + self.window]  # (T,)

        if self.transform is not None:
            clip = self.transform(clip.astype(np.float32) * np.float32(1.0 / 255.0))
        return frames_to_tensor(clip), torch.from_numpy(np.array(target)).unsqueeze(-1)

    def label_statistics(self) -> dict[str, Any]:
        """Mean, standard deviation and absolute maximum of the labels of the used episodes."""
        values = np.concatenate([self.episode_arrays(p)[1] for p in range(len(self.episodes))])
        return {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "max_abs": float(np.abs(values).max()),
            "frames": int(len(values)),
        }
