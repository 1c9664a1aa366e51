"""Collect expert driving data: one compressed shard per episode and a manifest.

An output folder holds::

    manifest.json         collection config, environment config, one entry per finished episode
    episode_00000.npz     frames and labels of episode 0
    episode_00001.npz     ...

Each shard is a zip of ``.npy`` arrays (readable with :func:`numpy.load`), all with the frame
index ``t`` first:

=====================  ==================  ==================================================
key                    shape, dtype        content
=====================  ==================  ==================================================
``frames``             (T, H, W, 3) uint8  camera frame seen at step ``t``
``command``            (T,) float32        expert curvature for that frame, 1/m (the label)
``executed``           (T,) float32        curvature applied, 1/m (``command`` plus the
                                           steering noise, if any)
``road_curvature``     (T,) float32        road curvature at the car, 1/m
``curvature_ahead``    (T, K) float32      road curvature at the preview distances, 1/m
``lateral_offset``     (T,) float32        offset from the lane centre, m, positive left
``heading_error``      (T,) float32        yaw minus road heading, rad
``s``, ``x``, ``y``,   (T,) float64        arc length, position and yaw of the body centre
``yaw``
``speed``              (T,) float32        speed, m/s
=====================  ==================  ==================================================

Episodes are deterministic functions of ``(seed, index)``: episode ``i`` uses the road of seed
``SeedSequence([seed, i])``. A ``recovery_fraction`` of the episodes start off the lane centre,
with a lateral offset and heading error drawn uniformly within the configured limits, so that
a learned driver sees how to return to the centre. Optional steering noise, an
Ornstein-Uhlenbeck process added to the executed command while the label stays the expert's
clean output, makes the car wander so that every episode shows corrections.

Collection resumes: shards are written to a temporary name and renamed when complete, and the
manifest is rewritten after each episode. Running the same collection again skips finished
episodes and redoes any that were interrupted, so no episode is lost or duplicated. Asking for
more episodes than before extends the folder.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchlnn.driving.expert import PurePursuitExpert
from torchlnn.driving.registry import ENV_IDS, make_env

__all__ = ["CollectionConfig", "collect", "episode_seed", "read_manifest", "MANIFEST"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class CollectionConfig:
    """Settings of a collection. Every field but ``episodes`` and ``workers`` must match when
    a collection is resumed."""

    env: str = "sim"
    """``"sim"`` or ``"carracing"``."""
    episodes: int = 20
    """Number of episodes."""
    steps: int = 600
    """Frames per episode (20 s at 30 Hz); an episode ends earlier if the car departs."""
    seed: int = 0
    """Base seed; episode ``i`` uses ``episode_seed(seed, i)``."""
    recovery_fraction: float = 0.5
    """Share of episodes that start off the lane centre."""
    max_lateral_offset: float = 1.2
    """Largest initial lateral offset of a recovery episode, in metres."""
    max_heading_error_deg: float = 6.0
    """Largest initial heading error of a recovery episode, in degrees."""
    steer_noise: float = 0.0
    """Standard deviation of the steering noise added to the executed curvature, in 1/m."""
    steer_noise_time: float = 1.0
    """Correlation time of the steering noise, in seconds."""
    env_overrides: dict[str, Any] = field(default_factory=dict)
    """Configuration fields of the environment to change, e.g. ``{"speed": 12.0}``."""
    workers: int = 1
    """Worker processes collecting episodes in parallel."""

    def __post_init__(self) -> None:
        if self.env not in ENV_IDS:
            raise ValueError(f"env must be one of {sorted(ENV_IDS)}, got {self.env!r}")
        if self.episodes < 0 or self.steps < 1 or self.workers < 1:
            raise ValueError(
                f"episodes must be >= 0, steps >= 1 and workers >= 1, got {self.episodes}, "
                f"{self.steps} and {self.workers}"
            )
        if not 0.0 <= self.recovery_fraction <= 1.0:
            raise ValueError(
                f"recovery_fraction must lie in [0, 1], got {self.recovery_fraction}"
            )
        if self.steer_noise < 0 or self.steer_noise_time <= 0:
            raise ValueError(
                f"steer_noise must be >= 0 and steer_noise_time > 0, got {self.steer_noise} "
                f"and {self.steer_noise_time}"
            )

    def identity(self) -> dict[str, Any]:
        """Return the fields that define the data (all but ``episodes`` and ``workers``)."""
        values = dataclasses.asdict(self)
        values.pop("episodes")
        values.pop("workers")
        return values


def episode_seed(seed: int, index: int) -> int:
    """Seed of episode ``index`` of a collection with base ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def read_manifest(root: str | Path) -> dict[str, Any]:
    """Load ``manifest.json`` from a collection folder."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST} in {root}; collect data first with `torchlnn driving collect`"
        )
    return json.loads(path.read_text())


def _start_state(config: CollectionConfig, index: int) -> dict[str, float]:
    """Initial offsets of episode ``index``: zero, or drawn for a recovery episode."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 1]))
    if rng.random() >= config.recovery_fraction:
        return {"lateral_offset": 0.0, "heading_error": 0.0}
    return {
        "lateral_offset": float(rng.uniform(-1, 1) * config.max_lateral_offset),
        "heading_error": float(math.radians(rng.uniform(-1, 1) * config.max_heading_error_deg)),
    }


def _run_episode(config: CollectionConfig, index: int, folder: str) -> dict[str, Any]:
    """Drive episode ``index`` with the expert, write its shard, return its manifest entry."""
    env = make_env(config.env, episode_steps=config.steps, **config.env_overrides)
    expert = PurePursuitExpert()
    seed = episode_seed(config.seed, index)
    start = _start_state(config, index)
    observation, info = env.reset(seed=seed, options=start)

    # Steering noise: Ornstein-Uhlenbeck process with its own generator.
    noise_rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 2]))
    decay = math.exp(-env.unwrapped.dt / config.steer_noise_time)
    kick = config.steer_noise * math.sqrt(1.0 - decay * decay)
    noise = 0.0

    columns: dict[str, list[Any]] = {key: [] for key in (
        "frames", "command", "executed", "road_curvature", "curvature_ahead",
        "lateral_offset", "heading_error", "s", "x", "y", "yaw", "speed")}
    departed = False
    for _ in range(config.steps):
        command = expert(observation, info)
        if config.steer_noise > 0:
            noise = decay * noise + kick * noise_rng.standard_normal()
        executed = command + noise

        columns["frames"].append(observation)
        columns["command"].append(command)
        columns["executed"].append(executed)
        for key in ("road_curvature", "curvature_ahead", "lateral_offset", "heading_error",
                    "s", "x", "y", "yaw", "speed"):
            columns[key].append(info[key])

        observation, _, terminated, truncated, info = env.step(
            np.array([executed], dtype=np.float32))
        if terminated:
            departed = True
            break
        if truncated:
            break
    env.close()

    arrays = {
        "frames": np.stack(columns["frames"]).astype(np.uint8),
        "curvature_ahead": np.asarray(columns["curvature_ahead"], dtype=np.float32),
    }
    for key in ("command", "executed", "road_curvature", "lateral_offset", "heading_error",
                "speed"):
        arrays[key] = np.asarray(columns[key], dtype=np.float32)
    for key in ("s", "x", "y", "yaw"):
        arrays[key] = np.asarray(columns[key], dtype=np.float64)

    name = f"episode_{index:05d}.npz"
    _write_npz(Path(folder) / name, arrays)
    return {
        "index": index,
        "seed": seed,
        "file": name,
        "frames": int(len(arrays["command"])),
        "start": start,
        "departed": departed,
    }


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` with fast deflate compression, atomically (temporary name, rename)."""
    temporary = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=1) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(value), allow_pickle=False)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    os.replace(temporary, path)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    temporary = folder / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, folder / MANIFEST)


def _environment_config(config: CollectionConfig) -> dict[str, Any]:
    env = make_env(config.env, episode_steps=config.steps, **config.env_overrides)
    resolved = env.unwrapped.config.to_dict()
    env.close()
    return resolved


def collect(
    out_dir: str | Path,
    config: CollectionConfig | None = None,
    progress: bool = True,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Collect ``config.episodes`` expert episodes into ``out_dir``, resuming if it already
    contains part of the same collection.

    Arguments:
        out_dir: output folder, created if missing.
        config: what to collect; ``None`` uses the defaults.
        progress: show a progress bar.
        on_episode: called with each new manifest entry once it is saved.

    Returns:
        The manifest.
    """
    from torchlnn import __version__

    config = config or CollectionConfig()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)

    # Resume: keep finished episodes of the same collection, drop partial files.
    for leftover in folder.glob("*.tmp"):
        leftover.unlink()
    if (folder / MANIFEST).is_file():
        manifest = read_manifest(folder)
        if manifest.get("collection") != config.identity():
            previous = manifest.get("collection", {})
            changed = sorted(k for k in set(previous) | set(config.identity())
                             if previous.get(k) != config.identity().get(k))
            raise ValueError(
                f"{folder} contains a different collection (fields {changed} differ); use "
                f"another output folder, or the same settings to resume"
            )
    else:
        manifest = {
            "format": FORMAT_VERSION,
            "torchlnn_version": __version__,
            "env_id": ENV_IDS[config.env],
            "collection": config.identity(),
            "env_config": _environment_config(config),
            "episodes": [],
        }
    finished = {
        entry["index"]: entry for entry in manifest["episodes"]
        if (folder / entry["file"]).is_file()
    }
    missing = [index for index in range(config.episodes) if index not in finished]
    manifest["episodes"] = sorted(finished.values(), key=lambda entry: entry["index"])

    from tqdm.auto import tqdm

    bar = tqdm(total=config.episodes, initial=config.episodes - len(missing), unit="episode",
               desc=f"collect {config.env}", disable=not progress)

    def record(entry: dict[str, Any]) -> None:
        finished[entry["index"]] = entry
        manifest["episodes"] = sorted(finished.values(), key=lambda item: item["index"])
        _write_manifest(folder, manifest)
        bar.update(1)
        bar.set_postfix(frames=sum(item["frames"] for item in finished.values()))
        if on_episode is not None:
            on_episode(entry)

    try:
        _write_manifest(folder, manifest)
        if config.workers == 1 or len(missing) <= 1:
            for index in missing:
                record(_run_episode(config, index, str(folder)))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(config.workers, mp_context=context) as pool:
                jobs = [pool.submit(_run_episode, config, index, str(folder))
                        for index in missing]
                for job in jobs:
                    record(job.result())
    finally:
        bar.close()
    return manifest
