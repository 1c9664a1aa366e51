"""The lane-keeping seed summary: its statistics and its refusals, on hand-made records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from .scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("lane_keeping_seeds")


def write_run(folder: Path, seed: int, rate: float, offset: float, mse: float, **config) -> Path:
    """Write a finished run's record with one policy, "ncp-ltc", and one noise level."""
    settings = {
        "preset": "quick",
        "env": "sim",
        "seed": seed,
        "episodes": 20,
        "episode_steps": 400,
        "epochs": 8,
        "eval_seeds": [1000],
        "eval_distance": 400.0,
        "noise_variances": [0.3],
        **config,
    }
    drive = {"departures_per_km": rate, "mean_abs_offset_m": offset}
    record = {
        "config": settings,
        "torchlnn_version": "0",
        "torch_version": "0",
        "stages": {
            "train": {"ncp-ltc": {"test_mse": mse}},
            "evaluate": {
                "ncp-ltc | clean": {"summary": {**drive, "departures_per_km": 0.0}},
                "ncp-ltc | noise 0.3": {"summary": drive},
            },
            "analyse": {"models": {"ncp-ltc": {"attention_ssim": 0.5 + seed / 10}}},
        },
    }
    run = folder / f"run-{seed}"
    run.mkdir()
    (run / "lane_keeping.json").write_text(json.dumps(record))
    return run


def test_mean_and_spread_over_seeds(script, tmp_path):
    runs = [
        write_run(tmp_path, 0, rate=0.0, offset=0.1, mse=1e-6),
        write_run(tmp_path, 1, rate=2.5, offset=0.3, mse=4e-6),
    ]
    out = tmp_path / "out"
    assert script.main([*map(str, runs), "--name", "two", "--results-dir", str(out)]) == 0

    summary = json.loads((out / "two.json").read_text())
    row = summary["policies"]["ncp-ltc"]
    assert row["departures_per_km | noise 0.3"] == {"mean": 1.25, "std": 1.25, "values": [0, 2.5]}
    assert row["offline_rmse_per_km"]["values"] == pytest.approx([1.0, 2.0])
    assert row["mean_abs_offset_m | noise 0.3"]["mean"] == pytest.approx(0.2)
    assert row["attention_ssim"]["mean"] == pytest.approx(0.55)
    assert summary["seeds"] == [0, 1]
    table = (out / "two.md").read_text()
    assert "| ncp-ltc | 1.50 ± 0.50 | 0.0 ± 0.0 | 1.2 ± 1.2 | 0.200 ± 0.100 |" in table
    assert math.isclose(row["offline_rmse_per_km"]["std"], 0.5)


def test_rejects_mismatched_runs(script, tmp_path):
    first = write_run(tmp_path, 0, rate=0.0, offset=0.1, mse=1e-6)
    longer = write_run(tmp_path, 1, rate=0.0, offset=0.1, mse=1e-6, epochs=30)
    with pytest.raises(SystemExit, match="epochs differs"):
        script.main([str(first), str(longer), "--name", "x", "--results-dir", str(tmp_path)])
    denser = write_run(tmp_path, 2, rate=0.0, offset=0.1, mse=1e-6, stride=4)
    with pytest.raises(SystemExit, match="stride differs"):
        script.main([str(first), str(denser), "--name", "x", "--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="both have seed 0"):
        script.main([str(first), str(first), "--name", "x", "--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="lane_keeping.json not found"):
        script.main([str(tmp_path), "--name", "x", "--results-dir", str(tmp_path)])


def test_policy_missing_from_a_run_is_left_out(script, tmp_path):
    first = write_run(tmp_path, 0, rate=0.0, offset=0.1, mse=1e-6)
    second = write_run(tmp_path, 1, rate=0.0, offset=0.1, mse=1e-6, threads=2)
    record = json.loads((second / "lane_keeping.json").read_text())
    record["stages"]["train"]["lstm"] = {"test_mse": 1e-6}
    (second / "lane_keeping.json").write_text(json.dumps(record))

    out = tmp_path / "out"
    script.main([str(first), str(second), "--name", "two", "--results-dir", str(out)])
    summary = json.loads((out / "two.json").read_text())
    assert summary["left_out"] == ["lstm"]
    assert list(summary["policies"]) == ["ncp-ltc"]
    assert "Left out, not trained in every run: lstm." in (out / "two.md").read_text()


def test_older_run_counts_as_pytorch_init(script, tmp_path):
    older = write_run(tmp_path, 0, rate=0.0, offset=0.1, mse=1e-6)  # no conv_init recorded
    newer = write_run(tmp_path, 1, rate=0.0, offset=0.1, mse=1e-6, conv_init="pytorch")
    out = tmp_path / "out"

    assert script.main([str(older), str(newer), "--name", "mixed", "--results-dir", str(out)]) == 0
    assert "conv head initialised as 'pytorch'" in (out / "mixed.md").read_text()

    glorot = write_run(tmp_path, 2, rate=0.0, offset=0.1, mse=1e-6, conv_init="glorot")
    with pytest.raises(SystemExit, match="conv_init differs: 'pytorch'"):
        script.main([str(older), str(glorot), "--name", "x", "--results-dir", str(tmp_path)])
