"""The dead-channel probe: counts at initialisation and a tiny training run on collected data."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("gymnasium")

from torchlnn.driving.lane_keeping import LaneKeepingConfig, collect_stage, open_run  # noqa: E402

from .scripts import load_script  # noqa: E402


@pytest.fixture(scope="module")
def script():
    return load_script("dead_channels")


def test_counts_at_initialisation(script):
    frames = torch.rand(6, 3, 78, 200, generator=torch.Generator().manual_seed(0))

    pytorch = script.count_at_initialisation("cnn", (78, 200), "pytorch", 4, frames)
    glorot = script.count_at_initialisation("cnn", (78, 200), "glorot", 4, frames)

    assert pytorch["channels"] == [24, 36, 48, 64, 8]
    assert sum(pytorch["last_layer_counts"]) == 4
    assert len(pytorch["last_layer_counts"]) == 9
    assert glorot["mean_live"][-1] > pytorch["mean_live"][-1]
    table = script.initialisation_table([pytorch, glorot])
    assert "| glorot | 4 |" in table


def test_probe_writes_record_and_table(script, tmp_path, monkeypatch):
    config = LaneKeepingConfig(
        episodes=4, episode_steps=40, runs_root=str(tmp_path / "runs"), progress=False
    )
    run = open_run(config, run_dir=str(tmp_path / "run"))
    run.finish("collect", collect_stage(run), 0.0)
    out = tmp_path / "probe-lr-0.001"  # a dot in the name must not cut it
    monkeypatch.setattr(sys, "argv", [
        "dead_channels.py", "--run-dir", str(run.folder), "--kind", "cnn", "--seeds", "0",
        "--inits", "glorot", "--epochs", "1", "--every", "1", "--frames", "4",
        "--init-samples", "2", "--out", str(out),
    ])

    script.main()

    record = json.loads((tmp_path / "probe-lr-0.001.json").read_text())
    assert record["at_initialisation"][0]["samples"] == 2
    result = record["results"][0]
    assert result["steps"] >= 1
    assert len(result["trace"]) == result["steps"] + 1  # the start, then every step
    assert all(len(point["live"]) == 5 for point in result["trace"])
    assert "| glorot | 0.001 | 0 |" in (tmp_path / "probe-lr-0.001.md").read_text()
