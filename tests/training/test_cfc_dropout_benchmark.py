"""The CfC dropout benchmark script times every implementation and records the ratios."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cfc_dropout.py"


def load_script():
    spec = importlib.util.spec_from_file_location("cfc_dropout_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cfc_dropout_benchmark_writes_record(tmp_path):
    pytest.importorskip("ncps")
    module = load_script()
    output = tmp_path / "cfc_dropout.json"

    code = module.main(
        ["--units", "8", "--batch", "2", "--steps", "3", "--rounds", "1", "--output", str(output)]
    )

    assert code == 0
    record = json.loads(output.read_text())
    rows = record["results"]
    assert set(rows) == {"torchlnn fast path", "torchlnn reference", "ncps", "torch.nn.LSTM"}
    fast = rows["torchlnn fast path"]["step_ms"]
    assert fast > 0
    for row in rows.values():
        assert row["step_ms"] > 0
        ratio = row["step_ms"] / fast
        assert row["time_over_fast_path"] == pytest.approx(ratio, rel=0.05, abs=0.01)
    assert record["settings"]["backbone_dropout"] == 0.3


def test_cfc_dropout_benchmark_models():
    module = load_script()
    models = module.build_models(units=8, layers=2, dropout=0.3)
    fast, reference = models["torchlnn fast path"], models["torchlnn reference"]
    assert fast.training and fast.rnn_cell.backbone_dropout == 0.3
    assert fast.rnn_cell.fast_path and not reference.rnn_cell.fast_path


@pytest.mark.parametrize(
    "option, message",
    [
        (["--dropout", "0"], "--dropout must be in"),
        (["--rounds", "0"], "^--rounds must be at least 1, got 0"),
        (["--layers", "0"], "^--layers must be at least 1, got 0"),
    ],
)
def test_cfc_dropout_benchmark_rejects_bad_settings(option, message, tmp_path):
    module = load_script()
    with pytest.raises(SystemExit, match=message):
        module.main([*option, "--output", str(tmp_path / "x.json")])
