"""Training-step time of a CfC whose backbone dropout is active, against ncps and an LSTM.

With ``backbone_dropout > 0`` in training mode, torchlnn's CfC draws the dropout masks of
every step before the time loop and runs its fast path. Before, such a CfC trained on the
reference loop. This script times one training step (forward, a sum-of-squares loss,
backward) of:

* torchlnn's CfC on its fast path (the default),
* the same model on the reference loop (``fast_path = False``),
* ncps 1.0.1's CfC with the same sizes and dropout, when ncps is installed,
* ``torch.nn.LSTM`` with as many units, without dropout (the usual yardstick).

NOTE: ncps adds dropout only after the second and later backbone layers, torchlnn after
every layer. The default of two backbone layers gives ncps one dropout layer and torchlnn
two, so torchlnn does slightly more work here.

Rounds alternate the implementations so that load from other programs spreads over all of
them. Each figure is the median CPU time of this process per step over ``--rounds`` rounds,
on ``--threads`` torch threads. The result is printed and written to
``benchmarks/results/cfc_dropout.json``.

Run: ``python benchmarks/cfc_dropout.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import torchlnn
from torchlnn._io import write_json
from torchlnn.training.run import environment_info

try:
    import ncps.torch as ncps_torch
except ImportError:  # ncps is a test dependency only
    ncps_torch = None

RESULT = Path(__file__).parent / "results" / "cfc_dropout.json"
FEATURES = 32


def step_seconds(model: nn.Module, x: torch.Tensor) -> float:
    """Return the CPU seconds of one training step: forward, sum of squares, backward."""
    model.zero_grad(set_to_none=True)
    started = time.process_time()
    output = model(x)[0]
    output.square().sum().backward()
    return time.process_time() - started


def build_models(units: int, layers: int, dropout: float) -> dict[str, nn.Module]:
    """Return the models to time, each in training mode, by name."""
    torch.manual_seed(0)
    options = {"backbone_layers": layers, "backbone_dropout": dropout}
    fast = torchlnn.CfC(FEATURES, units, **options)
    reference = torchlnn.CfC(FEATURES, units, **options)
    reference.fast_path = False
    reference.rnn_cell.fast_path = False
    models = {"torchlnn fast path": fast, "torchlnn reference": reference}
    if ncps_torch is not None:
        models["ncps"] = ncps_torch.CfC(FEATURES, units, **options)
    models["torch.nn.LSTM"] = nn.LSTM(FEATURES, units, batch_first=True)
    for model in models.values():
        model.train()
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=64, help="CfC and LSTM units (64)")
    parser.add_argument("--layers", type=int, default=2, help="CfC backbone layers (2)")
    parser.add_argument("--dropout", type=float, default=0.3, help="backbone dropout (0.3)")
    parser.add_argument("--batch", type=int, default=64, help="sequences per batch (64)")
    parser.add_argument("--steps", type=int, default=100, help="time steps (100)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--output", type=Path, default=RESULT, help="JSON file to write")
    args = parser.parse_args(argv)
    for name in ("units", "layers", "batch", "steps", "rounds", "threads"):
        value = getattr(args, name)
        if value < 1:
            raise SystemExit(f"--{name} must be at least 1, got {value}.")
    if not 0.0 < args.dropout < 1.0:
        raise SystemExit(f"--dropout must be in (0, 1), got {args.dropout}.")
    torch.set_num_threads(args.threads)

    models = build_models(args.units, args.layers, args.dropout)
    x = torch.randn(args.batch, args.steps, FEATURES)  # (B, T, F)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up
        step_seconds(model, x)
    for _ in range(args.rounds):
        for name, model in models.items():
            seconds[name].append(step_seconds(model, x))

    medians = {name: statistics.median(values) for name, values in seconds.items()}
    fast = medians["torchlnn fast path"]
    results = {}
    for name, value in medians.items():
        results[name] = {
            "step_ms": round(value * 1000, 3),
            "time_over_fast_path": round(value / fast, 2),
        }
        print(f"{name:20s} {value * 1000:8.1f} ms per step, {value / fast:5.2f}x the fast path's")
    if ncps_torch is None:
        print("ncps is not installed: its CfC was not timed (pip install ncps==1.0.1).")

    record = {
        "settings": {
            "units": args.units,
            "backbone_layers": args.layers,
            "backbone_dropout": args.dropout,
            "batch": args.batch,
            "steps": args.steps,
            "features": FEATURES,
            "rounds": args.rounds,
            "threads": args.threads,
        },
        "environment": environment_info(),
        "results": results,
    }
    write_json(args.output, record)
    print(f"Written to {args.output}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
