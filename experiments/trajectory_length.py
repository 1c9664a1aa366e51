"""Trajectory-length expressivity of LTC, CT-RNN and neural ODE networks (LTC paper analysis).

A circular input x(t) = (sin t, cos t), t in [0, 2*pi], drives a stack of ``depth`` layers of
``width`` neurons with random weights. Each layer is a continuous-time system driven by the
state trajectory of the layer before it. The three models differ only in the form of the
vector field, with the same drive f = act(W_h h + W_x x + b):

    neural ODE   dh/dt = f
    CT-RNN       dh/dt = -h / tau + f
    LTC          dh/dt = -(1 / tau + f) * h + f * A

Weights are drawn as W ~ N(0, sigma_w^2 / fan_in) with fan_in the number of inputs of the layer
(state and input together), b ~ N(0, sigma_b^2), A ~ N(0, 1), and tau = 1. Every input step is
integrated with torchlnn's adaptive Dormand-Prince 5(4) solver, which integrates
C dv/dt = numerator(v) - denominator(v) * v; the three fields fit that form exactly
(C = 1, and numerator, denominator = f, 0 for the neural ODE, f, 1/tau for the CT-RNN and
f * A, 1/tau + f for the LTC).

The input goes around the circle ``1 + warmup_periods`` times, starting from a zero state, and
only the last period is measured, so the transient from the zero state is left out (with
``--warmup-periods 0`` the first period is measured, transient included). The trajectory
length of a layer is the sum of the distances between its consecutive states at the input's
sample times. It is reported in the full state space and after projecting the
states of the layer on their first two principal components, the view the LTC paper plots.
Longer trajectories from the same input mean a more expressive map.

    python experiments/trajectory_length.py                  # the full sweep (minutes)
    python experiments/trajectory_length.py --widths 8 --depths 2 --seeds 1 --steps 20

Writes ``<out>/trajectory_length.json``, ``<out>/trajectory_length.png`` and
``<out>/trajectory_length.section.md`` (a Markdown section for docs/results/experiments.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from torchlnn.solvers import Adaptive

MODELS = ("ltc", "ctrnn", "node")
LABELS = {"ltc": "LTC", "ctrnn": "CT-RNN", "node": "neural ODE"}
ACTIVATIONS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "hardtanh": torch.nn.functional.hardtanh,
}


def circle_input(steps: int) -> tuple[torch.Tensor, float]:
    """Return the circle sampled at ``steps`` points over [0, 2*pi], (T, 2), and the step."""
    t = torch.linspace(0.0, 2.0 * math.pi, steps + 1, dtype=torch.float64)[1:]  # (T,)
    return torch.stack([torch.sin(t), torch.cos(t)], dim=-1), 2.0 * math.pi / steps


def trajectory_length(states: torch.Tensor) -> torch.Tensor:
    """Sum of the distances between consecutive points: (..., T, D) -> (...)."""
    return (states[..., 1:, :] - states[..., :-1, :]).norm(dim=-1).sum(dim=-1)


def pca_projection(states: torch.Tensor, components: int = 2) -> torch.Tensor:
    """Project each (T, D) trajectory on its first principal components: -> (..., T, c)."""
    centred = states - states.mean(dim=-2, keepdim=True)  # (..., T, D)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)  # right: (..., D', D)
    return centred @ right[..., :components, :].transpose(-1, -2)  # (..., T, c)


class RandomLayer:
    """One continuous-time layer with random weights, for ``seeds`` networks at once.

    Shapes: S seeds, I inputs, K neurons. Weights ``w_h`` (S, K, K), ``w_x`` (S, K, I),
    ``b`` and ``a`` (S, K).
    """

    def __init__(
        self,
        model: str,
        inputs: int,
        width: int,
        seeds: int,
        sigma_w: float,
        sigma_b: float,
        activation: str,
        generator: torch.Generator,
    ):
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}.")
        fan_in = inputs + width
        scale = sigma_w / math.sqrt(fan_in)
        options = {"dtype": torch.float64, "generator": generator}
        self.model = model
        self.w_h = torch.randn(seeds, width, width, **options) * scale
        self.w_x = torch.randn(seeds, width, inputs, **options) * scale
        self.b = torch.randn(seeds, width, **options) * sigma_b
        self.a = torch.randn(seeds, width, **options)
        self.tau = 1.0
        self.activation = ACTIVATIONS[activation]

    def run(self, drive: torch.Tensor, dt: float, solver: Adaptive) -> torch.Tensor:
        """Integrate the layer over its input trajectory: (S, T, I) -> states (S, T, K)."""
        seeds, steps, _ = drive.shape
        h = torch.zeros(seeds, self.w_h.shape[1], dtype=torch.float64)  # (S, K)
        input_terms = torch.einsum("ski,sti->stk", self.w_x, drive) + self.b[:, None]  # (S, T, K)
        cm = torch.ones(self.w_h.shape[1], dtype=torch.float64)  # (K,)
        states = []
        for t in range(steps):
            fixed = input_terms[:, t]  # (S, K), the input is held over the step

            def terms(v: torch.Tensor, fixed: torch.Tensor = fixed):
                f = self.activation(torch.einsum("skj,sj->sk", self.w_h, v) + fixed)  # (S, K)
                if self.model == "node":
                    return f, torch.zeros_like(f)
                if self.model == "ctrnn":
                    return f, torch.full_like(f, 1.0 / self.tau)
                return f * self.a, 1.0 / self.tau + f

            h = solver.integrate(terms, cm, h, dt, unfolds=1)
            states.append(h)
        return torch.stack(states, dim=1)  # (S, T, K)


def measure(
    model: str,
    width: int,
    depth: int,
    seeds: int,
    sigma_w: float,
    sigma_b: float,
    activation: str,
    steps: int,
    solver: Adaptive,
    seed: int,
    warmup_periods: int = 0,
) -> dict:
    """Lengths of every layer of ``seeds`` random networks (mean and std over networks).

    Each layer is driven over ``1 + warmup_periods`` periods; its last ``steps`` states
    (the last period) are measured.
    """
    generator = torch.Generator().manual_seed(seed)
    circle, dt = circle_input(steps)  # (T, 2)
    periods = circle.repeat(1 + warmup_periods, 1)  # (P * T, 2)
    drive = periods.expand(seeds, -1, -1)  # (S, P * T, 2)
    layers = []
    last_states = None
    for _ in range(depth):
        layer = RandomLayer(
            model, drive.shape[-1], width, seeds, sigma_w, sigma_b, activation, generator
        )
        states = layer.run(drive, dt, solver)  # (S, P * T, K)
        measured = states[:, -steps:]  # (S, T, K), the last period
        full = trajectory_length(measured)  # (S,)
        projected = trajectory_length(pca_projection(measured))  # (S,)
        layers.append(
            {
                "length": float(full.mean()),
                "length_std": float(full.std(unbiased=False)),
                "pca_length": float(projected.mean()),
                "pca_length_std": float(projected.std(unbiased=False)),
            }
        )
        drive, last_states = states, measured
    return {"layers": layers, "example_pca": pca_projection(last_states[0]).tolist()}


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="16,32,64,100", help="comma-separated widths")
    parser.add_argument("--depths", type=int, default=4, help="layers per network")
    parser.add_argument("--sigma-w", default="1,2,4", help="comma-separated weight scales")
    parser.add_argument("--sigma-b", type=float, default=1.0, help="bias standard deviation")
    parser.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS))
    parser.add_argument("--seeds", type=int, default=5, help="random networks per setting")
    parser.add_argument("--steps", type=int, default=100, help="input samples over 2*pi")
    parser.add_argument(
        "--warmup-periods",
        type=int,
        default=1,
        help="periods of the circle run before the measured one (default: 1)",
    )
    parser.add_argument("--rtol", type=float, default=1e-6, help="solver relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-8, help="solver absolute tolerance")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights")
    parser.add_argument("--out", default="experiments/results", help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def plot(record: dict, path: Path) -> None:
    """Length against depth per width (first row) and example trajectories (second row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigmas = record["settings"]["sigma_w"]
    widths = record["settings"]["widths"]
    figure, axes = plt.subplots(2, len(sigmas), figsize=(4.2 * len(sigmas), 7.5), squeeze=False)
    colours = {"ltc": "tab:blue", "ctrnn": "tab:orange", "node": "tab:green"}
    styles = ["-", "--", "-.", ":"]
    for column, sigma in enumerate(sigmas):
        axis = axes[0][column]
        for model in MODELS:
            for index, width in enumerate(widths):
                entry = record["results"][f"{model}/w{width}/s{sigma:g}"]
                depths = np.arange(1, len(entry["layers"]) + 1)
                lengths = [layer["pca_length"] for layer in entry["layers"]]
                axis.plot(
                    depths,
                    lengths,
                    styles[index % len(styles)],
                    color=colours[model],
                    label=f"{LABELS[model]}, k={width}",
                )
        axis.set_yscale("log")
        axis.set_xlabel("layer")
        axis.set_ylabel("trajectory length (2-D PCA)")
        axis.set_title(f"sigma_w = {sigma:g}")
        axis.set_xticks(depths)
        if column == 0:
            axis.legend(fontsize=6, ncol=2)

        axis = axes[1][column]
        width = widths[-1]
        for model in MODELS:
            example = np.array(record["results"][f"{model}/w{width}/s{sigma:g}"]["example_pca"])
            axis.plot(example[:, 0], example[:, 1], color=colours[model], label=LABELS[model])
        axis.set_title(f"last layer, k={width}, first network")
        axis.set_aspect("equal", adjustable="datalim")
        if column == 0:
            axis.legend(fontsize=7)
    figure.suptitle(
        f"Circular input through random networks ({record['settings']['activation']}, "
        f"adaptive Dormand-Prince, {record['settings']['seeds']} networks per setting)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def section(record: dict, image: str) -> str:
    """Render a Markdown section with the table of last-layer lengths and the plot."""
    settings = record["settings"]
    lines = [
        "## Trajectory length (LTC paper expressivity analysis)",
        "",
        f"A circle (sin t, cos t), sampled at {settings['steps']} points per period, drives "
        f"{settings['depths']} stacked layers of random weights (W ~ N(0, sigma_w^2 / "
        f"fan_in), b ~ N(0, {settings['sigma_b']:g}), A ~ N(0, 1), tau = 1, activation "
        f"{settings['activation']}); each input step is integrated with torchlnn's adaptive "
        f"Dormand-Prince solver (rtol {settings['rtol']:g}, atol {settings['atol']:g}). "
        f"The states start at zero; the input runs {settings.get('warmup_periods', 0)} "
        "period(s) before the measured one. Mean over "
        f"{settings['seeds']} random networks of the length of the last layer's trajectory "
        "over the measured period, projected on its first two principal components "
        "(full-state length in brackets). Command: `" + record["command"] + "`; "
        f"{record['seconds']:.0f} s on {record['environment']['cpu']}, torchlnn commit "
        f"`{record['environment']['torchlnn_commit']}`.",
        "",
        "| sigma_w | width | " + " | ".join(LABELS[m] for m in MODELS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in MODELS) + " |",
    ]
    for sigma in settings["sigma_w"]:
        for width in settings["widths"]:
            cells = []
            for model in MODELS:
                last = record["results"][f"{model}/w{width}/s{sigma:g}"]["layers"][-1]
                cells.append(f"{last['pca_length']:.2f} ({last['length']:.2f})")
            lines.append(f"| {sigma:g} | {width} | " + " | ".join(cells) + " |")
    lines += ["", f"![trajectory length]({image})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    widths = [int(value) for value in args.widths.split(",")]
    sigmas = [float(value) for value in args.sigma_w.split(",")]
    solver = Adaptive(rtol=args.rtol, atol=args.atol)
    settings = {
        "widths": widths,
        "depths": args.depths,
        "sigma_w": sigmas,
        "sigma_b": args.sigma_b,
        "activation": args.activation,
        "seeds": args.seeds,
        "steps": args.steps,
        "rtol": args.rtol,
        "atol": args.atol,
        "seed": args.seed,
        "warmup_periods": args.warmup_periods,
    }

    start = time.perf_counter()
    results = {}
    jobs = [(m, w, s) for s in sigmas for w in widths for m in MODELS]
    for model, width, sigma in tqdm(jobs, disable=args.no_progress, desc="trajectory length"):
        results[f"{model}/w{width}/s{sigma:g}"] = measure(
            model,
            width,
            args.depths,
            args.seeds,
            sigma,
            args.sigma_b,
            args.activation,
            args.steps,
            solver,
            args.seed,
            args.warmup_periods,
        )

    from torchlnn.training import environment_info

    record = {
        "settings": settings,
        "results": results,
        "seconds": time.perf_counter() - start,
        "command": "python experiments/trajectory_length.py " + " ".join(sys.argv[1:]),
        "environment": environment_info(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trajectory_length.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(record, out / "trajectory_length.png")
    (out / "trajectory_length.section.md").write_text(section(record, "trajectory_length.png"))
    print(f"wrote {out / 'trajectory_length.json'} and trajectory_length.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
