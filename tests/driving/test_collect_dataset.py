"""Data collection (shards, manifest, resuming) and the dataset of frame windows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from torchlnn.driving.collect import CollectionConfig, collect, read_manifest
from torchlnn.driving.dataset import DrivingWindows, frames_to_tensor, split_episodes

SMALL = {"image_height": 24, "image_width": 64}


def _config(**changes):
    values = {"episodes": 3, "steps": 40, "seed": 9, "recovery_fraction": 0.5,
              "env_overrides": dict(SMALL)}
    values.update(changes)
    return CollectionConfig(**values)


def _shards(folder):
    manifest = read_manifest(folder)
    return {entry["index"]: dict(np.load(Path(folder) / entry["file"]))
            for entry in manifest["episodes"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    collect(folder, _config(episodes=4, steer_noise=0.003), progress=False)
    return folder


def test_collection_writes_shards_and_manifest(reference):
    manifest = read_manifest(reference)
    shards = _shards(reference)

    assert [entry["index"] for entry in manifest["episodes"]] == [0, 1, 2, 3]
    assert manifest["collection"]["seed"] == 9
    assert manifest["env_config"]["camera"]["image_width"] == 64
    for entry in manifest["episodes"]:
        arrays = shards[entry["index"]]
        assert arrays["frames"].shape == (entry["frames"], 24, 64, 3)
        assert arrays["frames"].dtype == np.uint8
        assert arrays["command"].shape == (entry["frames"],)
        assert arrays["curvature_ahead"].shape == (entry["frames"], 5)
        # The first frame starts at the offset recorded in the manifest.
        assert arrays["lateral_offset"][0] == pytest.approx(
            entry["start"]["lateral_offset"], abs=1e-5)


def test_steering_noise_changes_executed_but_not_the_label(reference):
    arrays = _shards(reference)[0]
    noise = arrays["executed"] - arrays["command"]

    assert np.abs(noise).max() > 0.0005
    assert np.abs(noise).max() < 0.02


def test_recovery_episodes_start_off_centre(reference):
    starts = [entry["start"] for entry in read_manifest(reference)["episodes"]]
    recovery = [start for start in starts if start["lateral_offset"] != 0.0]

    assert 0 < len(recovery) < len(starts)
    for start in recovery:
        assert abs(start["lateral_offset"]) <= 1.2
        assert abs(start["heading_error"]) <= np.radians(6.0)


def test_interrupted_collection_resumes_without_loss_or_duplicates(tmp_path, reference):
    config = _config(episodes=4, steer_noise=0.003)

    def stop_after_two(entry):
        if entry["index"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(tmp_path, config, progress=False, on_episode=stop_after_two)
    assert [e["index"] for e in read_manifest(tmp_path)["episodes"]] == [0, 1]
    (tmp_path / "episode_00002.npz.tmp").write_bytes(b"partial")  # killed mid-write

    collect(tmp_path, config, progress=False)
    manifest = read_manifest(tmp_path)
    assert [e["index"] for e in manifest["episodes"]] == [0, 1, 2, 3]
    assert not list(tmp_path.glob("*.tmp"))

    resumed, clean = _shards(tmp_path), _shards(reference)
    for index in range(4):
        for key, values in clean[index].items():
            np.testing.assert_array_equal(resumed[index][key], values)


def test_killed_process_resumes(tmp_path):
    command = [sys.executable, "-m", "torchlnn.cli", "driving", "collect", "--episodes", "6",
               "--steps", "150", "--out", str(tmp_path), "--seed", "3", "--quiet",
               "--set", "image_height=24", "--set", "image_width=64"]
    environment = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60.0
    done = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (tmp_path / "manifest.json").is_file():
            try:
                done = len(json.loads((tmp_path / "manifest.json").read_text())["episodes"])
            except json.JSONDecodeError:
                done = 0
            if done >= 1:
                break
        time.sleep(0.02)
    assert process.poll() is None, "collection finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = len(read_manifest(tmp_path)["episodes"])
    assert 1 <= interrupted < 6

    finished = subprocess.run(command, env=environment, capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    entries = read_manifest(tmp_path)["episodes"]
    assert [entry["index"] for entry in entries] == list(range(6))
    assert all(entry["frames"] == 150 for entry in entries)


def test_parallel_workers_match_serial_collection(tmp_path, reference):
    collect(tmp_path, _config(episodes=4, steer_noise=0.003, workers=2), progress=False)
    parallel, serial = _shards(tmp_path), _shards(reference)

    assert sorted(parallel) == [0, 1, 2, 3]
    for index in range(4):
        np.testing.assert_array_equal(parallel[index]["frames"], serial[index]["frames"])
        np.testing.assert_array_equal(parallel[index]["command"], serial[index]["command"])


def test_resume_with_other_settings_is_rejected(tmp_path):
    collect(tmp_path, _config(episodes=1), progress=False)
    with pytest.raises(ValueError, match="different collection"):
        collect(tmp_path, _config(episodes=1, seed=10), progress=False)


def test_more_episodes_extend_a_collection(tmp_path):
    collect(tmp_path, _config(episodes=1), progress=False)
    collect(tmp_path, _config(episodes=2), progress=False)
    assert [e["index"] for e in read_manifest(tmp_path)["episodes"]] == [0, 1]


def test_windows_stay_inside_episodes(reference):
    dataset = DrivingWindows(reference, window=16, stride=4)
    shards = _shards(reference)
    lengths = [entry["frames"] for entry in dataset.episodes]

    assert len(dataset) == sum((length - 16) // 4 + 1 for length in lengths)
    for item in range(len(dataset)):
        position, first = dataset.index[item]
        assert first + 16 <= lengths[position]
    frames, labels = dataset[len(dataset) - 1]
    position, first = dataset.index[-1]
    arrays = shards[dataset.episodes[position]["index"]]

    assert frames.shape == (16, 3, 24, 64)
    assert frames.dtype == torch.float32
    assert labels.shape == (16, 1)
    np.testing.assert_allclose(
        frames.numpy(), arrays["frames"][first:first + 16].transpose(0, 3, 1, 2) / 255.0,
        atol=1e-6)
    np.testing.assert_array_equal(labels[:, 0].numpy(), arrays["command"][first:first + 16])


def test_lazy_loading_matches_preloaded(reference):
    eager = DrivingWindows(reference, window=8, stride=8, label="road_curvature")
    lazy = DrivingWindows(reference, window=8, stride=8, label="road_curvature",
                          preload=False, cache_episodes=1)
    for item in (0, len(eager) // 2, len(eager) - 1):
        for a, b in zip(eager[item], lazy[item], strict=True):
            torch.testing.assert_close(a, b)


def test_split_and_transform(reference):
    training, validation = split_episodes(reference, validation_fraction=0.25, seed=0)
    assert sorted(training + validation) == [0, 1, 2, 3]
    assert len(validation) == 1

    darker = DrivingWindows(reference, window=4, stride=10, episodes=validation,
                            transform=lambda clip: clip * 0.5)
    plain = DrivingWindows(reference, window=4, stride=10, episodes=validation)
    torch.testing.assert_close(darker[0][0], plain[0][0] * 0.5)
    with pytest.raises(ValueError, match="not in"):
        DrivingWindows(reference, episodes=[42])


def test_frames_to_tensor_layout():
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 6, 3), dtype=np.uint8)
    tensor = frames_to_tensor(frames)

    assert tensor.shape == (2, 5, 3, 4, 6)
    torch.testing.assert_close(tensor[1, 2, 0], torch.from_numpy(frames[1, 2, :, :, 0]) / 255.0)
    floats = frames_to_tensor(frames.astype(np.float32) / 255.0)
    torch.testing.assert_close(floats, tensor)
