"""Small models shared by the analysis tests, and factories the CLI tests load by name."""

from __future__ import annotations

import torch
from torch import nn

import torchlnn
from torchlnn.wirings import NCP, Wiring


def small_ncp(seed: int = 3) -> NCP:
    """An NCP with 5 inter, 3 command and 2 motor neurons (10 neurons)."""
    return NCP(5, 3, 2, 3, 2, 3, 2, seed=seed)


class RelayWiring(Wiring):
    """A user wiring with an extra layer type: sensory -> relay -> inter -> command -> motor."""

    def __init__(self):
        super().__init__(8)
        self.set_output_dim(1)
        # ids: 0 motor, 1-2 command, 3-5 inter, 6-7 relay
        self._roles = ["motor", "command", "command", "inter", "inter", "inter", "relay", "relay"]
        self._groups = [[6, 7], [3, 4, 5], [1, 2], [0]]
        for src, dst, polarity in [
            (6, 3, 1), (6, 4, -1), (7, 5, 1), (7, 4, 1), (3, 1, 1), (4, 2, -1), (5, 1, -1),
            (1, 2, 1), (2, 2, -1), (1, 0, 1), (2, 0, -1),
        ]:
            self.add_synapse(src, dst, polarity)

    @property
    def num_layers(self) -> int:
        return 4

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        return list(self._groups[layer_id])

    def get_type_of_neuron(self, neuron_id: int) -> str:
        return self._roles[neuron_id]

    def _connect_sensory(self) -> None:
        for k in range(self.input_dim):
            self.add_sensory_synapse(k, 6 + k % 2, 1 if k % 3 else -1)


def conv_head(channels: int = 4) -> nn.Sequential:
    """Two strided convolutions with ReLU, flattened: (B, 3, 24, 32) -> (B, 4 * 5 * 7)."""
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(channels, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
    )


class TinyPolicy(nn.Module):
    """A per-frame conv head and an LTC: frames (B, T, 3, 24, 32) -> steering (B, T, 1)."""

    def __init__(self):
        super().__init__()
        self.conv_head = conv_head()
        self.dense = nn.Linear(4 * 5 * 7, 6)
        self.rnn = torchlnn.LTC(6, NCP(4, 3, 1, 2, 2, 2, 2, seed=1))

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        batch, steps = frames.shape[:2]
        flat = frames.reshape(batch * steps, *frames.shape[2:])  # (B * T, 3, H, W)
        return self.dense(self.conv_head(flat)).reshape(batch, steps, -1)  # (B, T, 6)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.features(frames))
        return output


class StreamingPolicy(TinyPolicy):
    """The same policy, calling its LTC once per frame with the state carried over."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        features = self.features(frames)
        h = None
        outputs = []
        for t in range(features.shape[1]):
            output, h = self.rnn(features[:, t : t + 1], h)
            outputs.append(output)
        return torch.cat(outputs, dim=1)


class FrameRegressor(nn.Module):
    """A feed-forward CNN baseline: one frame (B, 3, 24, 32) -> two outputs (B, 2)."""

    def __init__(self):
        super().__init__()
        self.conv_head = conv_head()
        self.head = nn.Linear(4 * 5 * 7, 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_head(frames))


def tiny_policy() -> TinyPolicy:
    """Factory for the CLI tests: a seeded TinyPolicy."""
    torch.manual_seed(0)
    return TinyPolicy()
