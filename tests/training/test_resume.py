"""A killed run resumes from its last checkpoint and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from tests.training.helpers import (
    environment,
    experiment_command,
    final_weights,
    result,
    run_folder,
)
from torchlnn.experiments import run_experiment

OPTIONS = ("--model", "ltc", "--epochs", "6", "--batch-size", "8", "--threads", "1")


def wait_for_epoch(root, epoch: int, process: subprocess.Popen, timeout: float = 120.0) -> int:
    """Wait until last.ckpt contains ``epoch`` or later; return its epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        try:
            last = run_folder(root) / "checkpoints" / "last.ckpt"
            if last.exists():
                saved = torch.load(last, weights_only=True)["epoch"]
                if saved >= epoch:
                    return saved
        except (AssertionError, FileNotFoundError, RuntimeError, EOFError):
            pass
        time.sleep(0.02)
    raise TimeoutError("no checkpoint appeared")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = subprocess.Popen(
        experiment_command(whole, *OPTIONS),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    interrupted = subprocess.Popen(
        experiment_command(killed, *OPTIONS),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_at = wait_for_epoch(killed, 1, interrupted)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (run_folder(killed) / "result.json").exists()

    rerun = subprocess.run(
        experiment_command(killed, *OPTIONS),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _, errors = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, errors[-3000:]

    record = json.loads((run_folder(killed) / "run.json").read_text())
    assert len(record["attempts"]) == 2
    assert record["attempts"][1]["resumed_from"].endswith("last.ckpt")
    resumed = result(killed)
    assert resumed["attempts"] == 2
    assert resumed["epochs_completed"] == 6
    assert len(resumed["epoch_seconds"]) == 6
    assert len(resumed["epoch_cpu_seconds"]) == 6
    assert killed_at < 5

    reference = result(whole)
    assert resumed["test_metrics"] == reference["test_metrics"]
    assert resumed["best_epoch"] == reference["best_epoch"]
    weights, reference_weights = final_weights(killed), final_weights(whole)
    assert weights.keys() == reference_weights.keys()
    for name in weights:
        assert torch.equal(weights[name], reference_weights[name]), name


def test_finished_run_is_reused(tmp_path):
    overrides = {
        "units": 4,
        "epochs": 1,
        "max_samples": 16,
        "batch_size": 16,
        "progress_bar": False,
        "runs_root": str(tmp_path / "runs"),
    }
    first = run_experiment("halfcheetah", "gru", [0], overrides, results_dir=tmp_path / "results")
    before = result(tmp_path)
    second = run_experiment("halfcheetah", "gru", [0], overrides, results_dir=tmp_path / "results")
    assert result(tmp_path) == before
    assert second["values"] == first["values"]
    record = json.loads((run_folder(tmp_path) / "run.json").read_text())
    assert len(record["attempts"]) == 1
