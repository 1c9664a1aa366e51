"""CPU time of a lane-keeping training step with the conv head's images channels first or last.

The lane-keeping policies run a five-layer conv head on every frame of every training window,
and on the CPU that head takes most of a training step. ``ConvHead`` converts its images to
channels-last order before the convs (``head.channels_last = True``, the default), which
lets oneDNN run the convolutions in NHWC order. This script times one training step
(forward, squared-error loss, backward) of each policy kind given, with the head's
``channels_last`` set to False and to True, on the same batch of windows.

Rounds alternate the two settings so that load from other programs spreads over both. Each
figure is the median over ``--rounds`` of the CPU time of this process per step, on
``--threads`` torch threads. With one thread the CPU time depends much less on other programs
sharing the machine than the wall-clock time would. The result is printed and written to
``benchmarks/results/conv_head.json``.

Run: ``python benchmarks/conv_head.py`` (about a minute per policy kind).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from torchlnn._io import write_json
from torchlnn.driving.policies import POLICY_KINDS, build_policy
from torchlnn.training.run import environment_info

RESULT = Path(__file__).parent / "results" / "conv_head.json"


def step_seconds(policy, frames: torch.Tensor, target: torch.Tensor) -> float:
    """Return the CPU seconds of one training step: forward, squared error, backward."""
    policy.zero_grad(set_to_none=True)
    started = time.process_time()
    curvature, _ = policy(frames)
    loss = (curvature - target).square().mean()
    loss.backward()
    return time.process_time() - started


def time_kind(kind: str, batch: int, window: int, rounds: int) -> dict[str, float]:
    """Return the median step seconds of one policy kind, channels first and channels last."""
    torch.manual_seed(0)
    policy = build_policy(kind)
    height, width = policy.head.frame_size
    frames = torch.rand(batch, window, 3, height, width)  # (B, T, 3, H, W)
    target = torch.zeros(batch, window)  # (B, T)

    seconds: dict[str, list[float]] = {"channels_first": [], "channels_last": []}
    for setting in (False, True):  # warm-up of both
        policy.head.channels_last = setting
        step_seconds(policy, frames, target)

    for _ in range(rounds):
        for name, setting in (("channels_first", False), ("channels_last", True)):
            policy.head.channels_last = setting
            seconds[name].append(step_seconds(policy, frames, target))

    first = statistics.median(seconds["channels_first"])
    last = statistics.median(seconds["channels_last"])
    return {
        "channels_first_s": round(first, 4),
        "channels_last_s": round(last, 4),
        "speed_up": round(first / last, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["ncp-ltc", "cnn", "lstm"],
                        choices=POLICY_KINDS, help="policy kinds to time")
    parser.add_argument("--batch", type=int, default=16, help="windows per batch (16)")
    parser.add_argument("--window", type=int, default=16, help="frames per window (16)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--output", type=Path, default=RESULT, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.window < 1 or args.rounds < 1 or args.threads < 1:
        raise SystemExit(
            f"--batch, --window, --rounds and --threads must be at least 1, got {args.batch}, "
            f"{args.window}, {args.rounds} and {args.threads}."
        )
    torch.set_num_threads(args.threads)

    results = {}
    for kind in args.kinds:
        results[kind] = time_kind(kind, args.batch, args.window, args.rounds)
        row = results[kind]
        print(
            f"{kind:8s} channels first {row['channels_first_s']:.3f} s, channels last "
            f"{row['channels_last_s']:.3f} s per step: {row['speed_up']:.2f}x"
        )

    record = {
        "settings": {
            "batch": args.batch,
            "window": args.window,
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
