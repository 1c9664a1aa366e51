"""The conv-head benchmark script runs and records both memory formats."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "conv_head.py"


def test_conv_head_benchmark_writes_record(tmp_path):
    spec = importlib.util.spec_from_file_location("conv_head_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "conv_head.json"

    code = module.main(
        ["--kinds", "cnn", "--batch", "1", "--window", "2", "--rounds", "1", "--output",
         str(output)]
    )

    assert code == 0
    record = json.loads(output.read_text())
    row = record["results"]["cnn"]
    assert row["channels_first_s"] > 0
    assert row["channels_last_s"] > 0
    ratio = row["channels_first_s"] / row["channels_last_s"]
    assert row["speed_up"] == pytest.approx(ratio, rel=0.05, abs=0.01)
    assert record["settings"]["threads"] == 1
