"""Train a CfC to predict the next state of the HalfCheetah robot, on the LTC paper's split.

The 31 recorded HalfCheetah traces ship with torchlnn (Apache 2.0, from the LTC paper's
repository). The model sees 32-step windows of the 17 joint positions and velocities and
predicts each next state. A linear one-step model reaches a test MSE of about 3.43 on this
split; the LTC paper reports 2.308 for LTC and 2.500 for an LSTM after 200 epochs.

    python examples/quickstart_halfcheetah.py --epochs 10
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import torchlnn
from torchlnn.data import load_halfcheetah


def mean_squared_error(model, split) -> float:
    with torch.no_grad():
        output, _ = model(split.inputs)
        return float((output - split.targets).pow(2).mean())


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training set")
    parser.add_argument("--units", type=int, default=32, help="CfC neurons")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    data = load_halfcheetah()
    features = data.train.inputs.shape[-1]
    model = torchlnn.CfC(features, args.units, proj_size=features)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.005)
    loader = DataLoader(data.dataset("train"), batch_size=16, shuffle=True)

    best_valid, test_at_best = float("inf"), float("nan")
    started = time.perf_counter()
    for epoch in range(args.epochs):
        for inputs, _, _, targets in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False):
            optimiser.zero_grad()
            loss = (model(inputs)[0] - targets).pow(2).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
        valid = mean_squared_error(model, data.valid)
        if valid < best_valid:
            best_valid, test_at_best = valid, mean_squared_error(model, data.test)
        print(f"epoch {epoch + 1}: validation MSE {valid:.3f}")

    minutes = (time.perf_counter() - started) / 60
    print(
        f"test MSE at the best validation epoch: {test_at_best:.3f} "
        f"(linear one-step model: 3.43; {args.epochs} epochs in {minutes:.1f} min)"
    )
    return test_at_best


if __name__ == "__main__":
    main()
