"""Every experiment end to end in a tiny configuration, offline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from torchlnn.cli import COMMAND_MODULES
from torchlnn.cli.experiment import register
from torchlnn.experiments import EXPERIMENTS, run_experiment
from torchlnn.training.models import MODEL_NAMES

TINY = {
    "units": 4,
    "epochs": 1,
    "max_samples": 24,
    "batch_size": 8,
    "limit_train_batches": 2,
    "progress_bar": False,
}
XOR_TINY = {
    **TINY,
    "loader_options": '{"encoding": "event", "num_train": 48, "num_valid": 24, "num_test": 24}',
}


def tiny_run(tmp_path, name, model, overrides, seeds=(0,)):
    return run_experiment(
        name,
        model,
        list(seeds),
        overrides={**overrides, "runs_root": str(tmp_path / "runs")},
        results_dir=tmp_path / "results",
        note="tiny test run",
    )


@pytest.mark.parametrize("model", ["ltc", "ctrnn", "lstm"])
def test_halfcheetah_tiny(tmp_path, no_network, model):
    row = tiny_run(tmp_path, "halfcheetah", model, TINY)
    assert row["mean"] > 0
    assert row["full_protocol"] is False
    assert row["seconds_per_epoch"] > 0
    assert row["cpu_seconds_per_epoch"] > 0
    record = json.loads((tmp_path / "results" / "halfcheetah.json").read_text())
    assert record["metric"] == "test_mse"
    assert record["paper"]["ltc"]["mean"] == 2.308
    table = (tmp_path / "results" / "halfcheetah.md").read_text()
    assert f"| {model} |" in table
    assert "1 (reduced)" in table
    assert "3.432" in table


@pytest.mark.parametrize("model", ["cfc", "cfc-mixed", "cfc-nogate", "cfc-pure", "gru"])
def test_xor_tiny(tmp_path, no_network, model):
    row = tiny_run(tmp_path, "xor", model, XOR_TINY)
    assert 0 <= row["mean"] <= 100
    assert row["config"]["output_size"] == 1
    # The row names the commit that training started from, as its run record does.
    (run_dir,) = row["run_dirs"]
    started = json.loads((Path(run_dir) / "run.json").read_text())["environment"]
    assert row["training_commits"] == [c for c in [started["torchlnn_commit"]] if c]
    assert row["config"]["timespans_as_feature"] == (model == "gru")


def test_xor_time_inputs_match_protocol():
    # The protocol text names the models that read the elapsed time as an input feature.
    spec = EXPERIMENTS["xor"]
    as_feature = {m for m in MODEL_NAMES if spec.config_for(m, 0).timespans_as_feature}
    assert as_feature == {"lstm", "gru"}
    assert "The LSTM and the GRU get the timespan as an extra input feature" in spec.protocol
    assert "the CT-RNN, like the LTC and the CfCs, takes it as the length" in spec.protocol


def test_speed_tiny_and_table_merging(tmp_path, no_network):
    tiny_run(tmp_path, "speed", "cfc", TINY)
    tiny_run(tmp_path, "speed", "ltc", TINY, seeds=(0, 1))
    record = json.loads((tmp_path / "results" / "speed.json").read_text())
    assert list(record["models"]) == ["ltc", "cfc"]
    assert record["models"]["ltc"]["seeds"] == [0, 1]
    assert len(record["models"]["ltc"]["values"]) == 2
    assert record["models"]["cfc"]["parameters"] > 0


def test_unknown_names_raise(tmp_path):
    with pytest.raises(ValueError, match="available"):
        run_experiment("mnist", "ltc", [0], results_dir=tmp_path)
    with pytest.raises(ValueError, match="expected one of"):
        run_experiment("halfcheetah", "rnn", [0], results_dir=tmp_path)


def test_cli_registers_the_command():
    assert "torchlnn.cli.experiment" in COMMAND_MODULES
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["experiment", "xor", "--model", "cfc-mixed", "--seeds", "2", "--epochs", "3"]
    )
    assert (args.name, args.model, args.seeds, args.cfg_epochs) == ("xor", "cfc-mixed", 2, 3)
    assert sorted(EXPERIMENTS) == ["halfcheetah", "speed", "xor"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--epochs", "0", "--epochs must be at least 1, got 0."),
        ("--batch-size", "0", "--batch-size must be at least 1, got 0."),
        ("--threads", "0", "--threads must be at least 1, got 0"),
        ("--lr", "-1", "--lr must be positive, got -1.0."),
    ],
)
def test_cli_rejects_invalid_value_before_training(tmp_path, capsys, option, value, message):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["experiment", "xor", "--model", "cfc", "--results-dir", str(tmp_path / "results"),
         "--runs-root", str(tmp_path / "runs"), option, value]
    )

    status = args.func(args)

    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "runs").exists()
