"""Run the experiment command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def experiment_command(root: Path, *options: str) -> list[str]:
    """The ``python -m torchlnn.experiments`` command of a tiny HalfCheetah run under root."""
    return [
        sys.executable,
        "-m",
        "torchlnn.experiments",
        "halfcheetah",
        "--seeds",
        "1",
        "--units",
        "4",
        "--max-samples",
        "32",
        "--progress-bar",
        "false",
        "--runs-root",
        str(root / "runs"),
        "--results-dir",
        str(root / "results"),
        *options,
    ]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
    return env


def run_folder(root: Path) -> Path:
    """The only run folder under root."""
    folders = [path.parent for path in (root / "runs" / "halfcheetah").glob("*/run.json")]
    assert len(folders) == 1, folders
    return folders[0]


def last_checkpoint(root: Path) -> dict:
    return torch.load(run_folder(root) / "checkpoints" / "last.ckpt", weights_only=True)


def final_weights(root: Path) -> dict[str, torch.Tensor]:
    return last_checkpoint(root)["state_dict"]


def result(root: Path) -> dict:
    return json.loads((run_folder(root) / "result.json").read_text())
