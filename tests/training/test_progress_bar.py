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
