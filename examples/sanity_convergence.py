"""Sanity convergence on two small problems, with an LSTM of the same size as a baseline.

Before blaming a cell for poor results, check that it learns these. Run:

    python examples/sanity_convergence.py

It prints a Markdown table of the final training MSE per model; docs/guide.md records it.

* Sine: input ``(sin t, cos t)`` over 48 steps, target ``sin 2t``; the model must learn to
  double a frequency, which needs state. Adam, learning rate 0.01, 400 steps.
* Static regression: ``y = sum(x)`` for ``x`` in R^8, sequences of length 1 (as an RL critic
  sees them). Adam, learning rate 0.01, 300 steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import torchlnn
from torchlnn.wirings import AutoNCP


def sine_task() -> tuple[torch.Tensor, torch.Tensor]:
    """Return inputs (4, 48, 2) and targets (4, 48, 1), four phases of the same task."""
    t = torch.linspace(0, 2 * math.pi, 48)
    phases = torch.tensor([0.0, 0.5, 1.0, 1.5])[:, None]
    inputs = torch.stack([torch.sin(t + phases), torch.cos(t + phases)], dim=-1)
    targets = torch.sin(2 * (t + phases))[..., None]
    return inputs, targets


class LSTMRegressor(nn.Module):
    """An LSTM with a linear read-out, the baseline of the same state size."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        hidden, state = self.lstm(x)
        return self.readout(hidden), state


def train(model: nn.Module, inputs, targets, steps: int, lr: float = 0.01) -> float:
    """Train with Adam on the MSE and return the final training MSE."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = (model(inputs)[0] - targets).pow(2).mean()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return float((model(inputs)[0] - targets).pow(2).mean())


def sine_mse(name: str, seed: int = 0, steps: int = 400) -> float:
    """Return the final MSE of model ``name`` ("cfc", "ltc" or "lstm") on the sine task."""
    torch.manual_seed(seed)
    models = {
        "cfc": lambda: torchlnn.CfC(2, AutoNCP(16, 1, seed=seed)),
        "ltc": lambda: torchlnn.LTC(2, AutoNCP(16, 1, seed=seed)),
        "lstm": lambda: LSTMRegressor(2, 16, 1),
    }
    inputs, targets = sine_task()
    return train(models[name](), inputs, targets, steps)


def static_mse(seed: int = 0, steps: int = 300) -> float:
    """Return the final MSE of ``CfC(8, 16, proj_size=1)`` on ``y = sum(x)`` with T = 1."""
    torch.manual_seed(seed)
    inputs = torch.randn(256, 1, 8)
    targets = inputs.sum(-1, keepdim=True)
    return train(torchlnn.CfC(8, 16, proj_size=1), inputs, targets, steps)


if __name__ == "__main__":
    print("| problem | model | final training MSE |")
    print("| --- | --- | --- |")
    for name in ("cfc", "ltc", "lstm"):
        print(f"| sine, 48 steps | {name} (16 units) | {sine_mse(name):.4f} |")
    print(f"| y = sum(x), T = 1 | cfc (16 units, proj 1) | {static_mse():.4f} |")
