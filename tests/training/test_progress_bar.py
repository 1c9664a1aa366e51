"""The training progress bar shows the epoch and the losses, not the logger's version."""

from __future__ import annotations

import subprocess

import pytest

pytest.importorskip("lightning")

from tests.training.helpers import environment, experiment_command  # noqa: E402


def test_progress_bar_without_logger_version(tmp_path):
    command = experiment_command(
        tmp_path, "--model", "lstm", "--progress-bar", "true", "--epochs", "1"
    )

    finished = subprocess.run(
        command, capture_output=True, text=True, env=environment(), timeout=300
    )

    assert finished.returncode == 0, finished.stderr[-2000:]
    bar = finished.stdout  # Lightning's bar writes to stdout
    assert "Epoch 0" in bar
    assert "valid_loss" in bar
    assert "v_num" not in bar


def test_own_progress_bar_replaces_the_default(tmp_path):
    from lightning.pytorch.callbacks import TQDMProgressBar

    from torchlnn.experiments.runner import build_run, get_spec
    from torchlnn.training import train_and_test

    spec = get_spec("xor")
    config = spec.config_for("lstm", 0)
    config.units, config.epochs, config.batch_size = 4, 1, 8
    config.loader_options = '{"encoding": "event", "num_train": 16, "num_valid": 8, "num_test": 8}'
    config.runs_root, config.progress_bar = str(tmp_path), True
    own = TQDMProgressBar(refresh_rate=5)

    result = train_and_test(config, lambda: build_run(spec, config), callbacks=[own])

    assert own.total_train_batches == 2  # the caller's bar ran the epoch
    assert result is not None
