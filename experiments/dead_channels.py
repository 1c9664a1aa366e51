"""When do the conv head's last-layer channels die, and which initialisation keeps them alive?

Some lane-keeping policies end training with no live channel in the conv head's last layer
(no ReLU output positive on any test frame), so their steering ignores the camera. This
script first counts the live channels of each conv layer right after initialisation, for many
seeds. Then it trains a policy's first epochs on the data of a lane-keeping run, as the
lane-keeping stage does. Windows, augmentation and the curve-weighted loss are the same, and
so is Adam with one rate for the conv head and one for the controller, with gradient
clipping at 1.0. After every few steps it counts the live channels on fixed validation
frames. It repeats this for several
initialisation seeds, conv-head initialisations and head learning rates.

The loop is a plain PyTorch loop, not the Lightning engine, so a seed here does not give the
same initial weights as the same seed of ``torchlnn lane-keeping``: the seeds are samples of
the initialisation, not replays of particular runs.

Usage:
    python experiments/dead_channels.py --run-dir RUN --kind ncp-cfc --seeds 0,1,2,3 \
        --inits pytorch,glorot --epochs 2 --out experiments/results/lane-keeping/dead-channels

``RUN`` is the folder of a lane-keeping run (its ``lane_keeping.json`` names the data and the
split). Writes ``<out>.json`` and a Markdown summary ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torchlnn.analysis import live_channels
from torchlnn.driving.dataset import DrivingWindows
from torchlnn.driving.lane_keeping import LEARNING_RATES, label_scale
from torchlnn.driving.learning import (
    Augmentation,
    make_policy_task,
    policy_step,
    weighted_loss,
)
from torchlnn.driving.policies import build_policy
from torchlnn.training.run import cpu_name


def probe(
    kind: str,
    data: dict,
    seed: int,
    conv_init: str,
    head_lr: float,
    epochs: int,
    every: int,
    frames: torch.Tensor,
    alpha: float = 100.0,
    batch_size: int = 16,
) -> dict:
    """Train from a fresh initialisation and return the live channels after every few steps."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    scale = label_scale(data)
    policy = build_policy(kind, frame_size=tuple(data["frame_size"]), conv_init=conv_init)
    policy.curvature_scale.fill_(scale)
    loss_fn = weighted_loss(alpha, scale)

    # The lane-keeping task's own Adam: one rate for the conv head, one for the controller.
    task = make_policy_task(
        policy, head_lr=head_lr, controller_lr=LEARNING_RATES[kind], loss=loss_fn,
        step=policy_step,
    )
    optimiser = task.configure_optimizers()
    windows = DrivingWindows(
        data["data_dir"], window=16, stride=8, episodes=data["split"]["train"],
        transform=Augmentation(),
    )
    loader = torch.utils.data.DataLoader(
        windows, batch_size=batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )

    def live() -> list[float]:
        policy.eval()
        fractions = live_channels(policy.head.convs, frames).tolist()
        policy.train()
        return fractions

    trace = [{"step": 0, "loss": None, "live": live()}]
    step = 0
    for _ in range(epochs):
        for batch_frames, labels in loader:
            prediction, _ = policy(batch_frames)  # (B, T, 3, H, W) -> (B, T)
            loss = loss_fn(prediction, labels[..., 0], None)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimiser.step()
            step += 1
            if step % every == 0:
                trace.append({"step": step, "loss": loss.item(), "live": live()})
    died = next((point["step"] for point in trace if point["live"][-1] == 0), None)
    return {"seed": seed, "conv_init": conv_init, "head_lr": head_lr, "steps": step,
            "died_at_step": died, "trace": trace}


def count_at_initialisation(
    kind: str, frame_size: tuple[int, int], conv_init: str, samples: int, frames: torch.Tensor
) -> dict:
    """Count the live channels of each conv layer right after initialisation, for many seeds."""
    counts = []
    for seed in range(samples):
        torch.manual_seed(seed)
        head = build_policy(kind, frame_size=frame_size, conv_init=conv_init).head
        widths = [layer.out_channels for layer in head.convs if isinstance(layer, nn.Conv2d)]
        fractions = live_channels(head.convs, frames)
        counts.append([round(f * w) for f, w in zip(fractions, widths)])
    table = np.asarray(counts)  # (samples, layers)
    return {
        "conv_init": conv_init,
        "samples": samples,
        "channels": widths,
        "mean_live": table.mean(axis=0).round(2).tolist(),
        "last_layer_min": int(table[:, -1].min()),
        "last_layer_counts": np.bincount(table[:, -1], minlength=widths[-1] + 1).tolist(),
    }


def initialisation_table(counts: list[dict]) -> str:
    """Return a Markdown table of the live channels at initialisation."""
    lines = [
        "| conv init | initialisations | mean live channels per layer | last layer: fewest live |",
        "| --- | --- | --- | --- |",
    ]
    for entry in counts:
        layers = ", ".join(
            f"{live:g} of {width}" for live, width in zip(entry["mean_live"], entry["channels"])
        )
        lines.append(
            f"| {entry['conv_init']} | {entry['samples']} | {layers} | "
            f"{entry['last_layer_min']} of {entry['channels'][-1]} |"
        )
    return "\n".join(lines)


def summary_table(results: list[dict], channels: int) -> str:
    """Return a Markdown table: live last-layer channels at the start, the middle, the end."""
    lines = [
        "| conv init | head learning rate | seed | live last-layer channels: start | middle | "
        "end | last layer dead from step |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        trace = result["trace"]
        counts = [round(point["live"][-1] * channels) for point in trace]
        middle = counts[len(counts) // 2]
        died = result["died_at_step"]
        lines.append(
            f"| {result['conv_init']} | {result['head_lr']:g} | {result['seed']} | "
            f"{counts[0]} of {channels} | "
            f"{middle} of {channels} | {counts[-1]} of {channels} | "
            f"{'not dead' if died is None else died} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True, help="folder of a lane-keeping run")
    parser.add_argument("--kind", default="ncp-cfc", help="policy kind")
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated init seeds")
    parser.add_argument("--inits", default="pytorch,glorot", help="conv head initialisations")
    parser.add_argument("--head-lrs", default="0.001", help="comma-separated rates")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per probe; 0: none")
    parser.add_argument("--init-samples", type=int, default=100,
                        help="initialisations counted without training, per conv init")
    parser.add_argument("--every", type=int, default=5, help="steps between counts")
    parser.add_argument("--frames", type=int, default=48, help="validation frames counted")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", required=True, help="output path without suffix")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    record_path = Path(args.run_dir) / "lane_keeping.json"
    if not record_path.is_file():
        raise SystemExit(
            f"lane_keeping.json not found in {args.run_dir}; pass the folder of a lane-keeping "
            "run that finished its collect stage."
        )
    data = json.loads(record_path.read_text())["stages"]["collect"]
    valid = DrivingWindows(data["data_dir"], window=1, stride=1, episodes=data["split"]["valid"])
    picks = np.linspace(0, len(valid) - 1, args.frames).astype(int)
    frames = torch.stack([valid[int(i)][0][0] for i in picks])  # (S, 3, H, W)

    started = time.perf_counter()
    frame_size = tuple(data["frame_size"])
    at_start = [
        count_at_initialisation(args.kind, frame_size, conv_init, args.init_samples, frames)
        for conv_init in args.inits.split(",")
    ]
    print(initialisation_table(at_start), flush=True)

    results = []
    for conv_init in args.inits.split(",") if args.epochs > 0 else ():
        for head_lr in (float(v) for v in args.head_lrs.split(",")):
            for seed in (int(v) for v in args.seeds.split(",")):
                result = probe(
                    args.kind, data, seed, conv_init, head_lr, args.epochs, args.every, frames
                )
                print(f"{conv_init}, head_lr {head_lr:g}, seed {seed}: last layer live "
                      f"{[round(p['live'][-1], 3) for p in result['trace']]}", flush=True)
                results.append(result)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    channels = build_policy(args.kind, frame_size=tuple(data["frame_size"])).head.maps
    record = {
        "command": "python experiments/dead_channels.py " + " ".join(
            f"--{name.replace('_', '-')} {value}" for name, value in vars(args).items()
        ),
        "kind": args.kind,
        "machine": f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
        "at_initialisation": at_start,
        "results": results,
    }
    # The name may hold dots (a learning rate, say), so the suffix is appended, not swapped.
    (out.parent / f"{out.name}.json").write_text(json.dumps(record, indent=1))
    tables = [initialisation_table(at_start)]
    if results:
        tables.append(summary_table(results, channels))
    (out.parent / f"{out.name}.md").write_text("\n\n".join(tables) + "\n")
    print(tables[-1])


if __name__ == "__main__":
    main()
