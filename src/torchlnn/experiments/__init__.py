"""Reproductions of the LTC and CfC papers' experiments on the training engine.

``torchlnn experiment NAME --model MODEL --seeds 3`` runs one table row; see
docs/results/experiments.md for the committed tables and experiments/run_table.py for
whole tables.
"""

from torchlnn.experiments.runner import build_run, get_spec, render_table, run_experiment
from torchlnn.experiments.specs import EXPERIMENTS, ExperimentConfig, ExperimentSpec

__all__ = [
    "EXPERIMENTS",
    "ExperimentConfig",
    "ExperimentSpec",
    "build_run",
    "get_spec",
    "render_table",
    "run_experiment",
]
