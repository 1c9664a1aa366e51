"""DDP with two CPU processes (gloo) trains the same weights as one process with the global
batch: the data module gives the two processes the two halves of each global batch, and
DDP averages their gradients."""

from __future__ import annotations

import subprocess

import pytest
import torch

from tests.training.helpers import (
    environment,
    experiment_command,
    final_weights,
    last_checkpoint,
    result,
)

COMMON = ("--model", "ltc", "--epochs", "2", "--lr", "0.01", "--threads", "1")


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    single_root, ddp_root = tmp_path / "single", tmp_path / "ddp"
    single = subprocess.Popen(
        experiment_command(single_root, *COMMON, "--batch-size", "16"),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ddp = subprocess.run(
        experiment_command(
            ddp_root,
            *COMMON,
            "--batch-size",
            "8",
            "--strategy",
            "ddp",
            "--devices",
            "2",
            "--accelerator",
            "cpu",
        ),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    _, errors = single.communicate(timeout=600)
    assert single.returncode == 0, errors[-4000:]

    # 32 samples, global batch 16, 2 epochs: 4 optimiser steps in both runs. A DDP run that
    # fell back to one process with batch 8 would take 8.
    ddp_result, single_result = result(ddp_root), result(single_root)
    assert ddp_result["epochs_completed"] == single_result["epochs_completed"] == 2
    assert last_checkpoint(ddp_root)["global_step"] == 4
    assert last_checkpoint(single_root)["global_step"] == 4
    weights, reference = final_weights(ddp_root), final_weights(single_root)
    assert weights.keys() == reference.keys()
    for name in weights:
        # Equal up to the order of floating-point sums in the gradient all-reduce.
        assert torch.allclose(weights[name], reference[name], rtol=1e-4, atol=1e-5), name
    assert ddp_result["test_metrics"]["test_mse"] == pytest.approx(
        single_result["test_metrics"]["test_mse"], rel=1e-4
    )
