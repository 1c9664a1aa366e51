"""Train a small NCP steering policy on a toy lane-keeping task, for the deployment guide.

The task replaces the camera-based lane-keeping policy until that one is trained. Each
step the "camera" is one row of 32 pixels that shows a bright blob where the lane centre is,
plus sensor noise. The lane centre drifts like a winding road. The expert's steering command
follows the lane centre through a first-order lag with a time constant of 0.5 s, so the
policy must keep a memory of the recent frames and use each frame's elapsed time, which
varies between 50 and 150 ms. The policy is the NCP paper's 19-neuron circuit
(``NCP(12, 6, 1, 6, 4, 6, 6)``) as an LTC with the fused solver, on 32 inputs.

    python examples/toy_lane_policy.py --output toy_policy.pt

One to three minutes on two CPU cores. The run is seeded: the same arguments give the same
weights.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from tqdm import tqdm

import torchlnn
from torchlnn.wirings import NCP

PIXELS = 32
LAG_SECONDS = 0.5


def make_episodes(count: int, steps: int, generator: torch.Generator):
    """Return ``(frames (B, T, 32), timespans (B, T, 1), steering (B, T, 1))``."""
    dt = 0.05 + 0.1 * torch.rand(count, steps, 1, generator=generator)  # seconds

    # The lane centre in [-1, 1]: a random walk on the road's curvature, kept inside the image.
    curvature = torch.cumsum(0.3 * torch.randn(count, steps, 1, generator=generator) * dt, 1)
    centre = torch.tanh(
        torch.cumsum(curvature * dt * 4.0, dim=1)
        + 0.5 * torch.randn(count, 1, 1, generator=generator)
    )

    # One row of pixels with a Gaussian blob at the lane centre, plus noise.
    positions = torch.linspace(-1.0, 1.0, PIXELS)
    frames = torch.exp(-((positions - centre) ** 2) / (2 * 0.15**2))
    frames = frames + 0.05 * torch.randn(frames.shape, generator=generator)

    # The expert's steering: a first-order lag of the lane centre, integrated exactly per step.
    steering = torch.zeros(count, steps, 1)
    command = torch.zeros(count, 1)
    for t in range(steps):
        decay = torch.exp(-dt[:, t] / LAG_SECONDS)
        command = decay * command + (1.0 - decay) * centre[:, t]
        steering[:, t] = command
    return frames, dt, steering


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("toy_policy.pt"), help="saved layer")
    parser.add_argument("--iterations", type=int, default=150, help="optimiser steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the weights")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    policy = torchlnn.LTC(PIXELS, NCP(12, 6, 1, 6, 4, 6, 6, seed=args.seed))
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.02)
    valid = make_episodes(64, 100, generator)

    progress = tqdm(range(args.iterations), desc="training", unit="step")
    for _ in progress:
        frames, dt, steering = make_episodes(32, 48, generator)
        prediction, _ = policy(frames, timespans=dt)
        loss = torch.nn.functional.mse_loss(prediction, steering)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")

    with torch.no_grad():
        frames, dt, steering = valid
        prediction, _ = policy(frames, timespans=dt)
        error = torch.nn.functional.mse_loss(prediction, steering).item()
        baseline = steering.pow(2).mean().item()  # always steering straight ahead
    print(
        f"validation MSE {error:.5f} (steering straight ahead: {baseline:.5f}); "
        f"RMSE {math.sqrt(error):.3f} on commands in [-1, 1]"
    )

    torchlnn.save(policy.eval(), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
