"""Models and reference runs shared by the export tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

import torchlnn
from torchlnn.wirings import NCP

INPUT_SIZE = 5


def small_ncp() -> NCP:
    """An NCP with 4 inter, 3 command and 2 motor neurons (9 in all)."""
    return NCP(4, 3, 2, 2, 2, 3, 2, seed=2)


def driver_ncp() -> NCP:
    """The 19-neuron lane-keeping circuit of the NCP paper, for 32 inputs."""
    return NCP(12, 6, 1, 6, 4, 6, 6, seed=3)


def perturbed(model: nn.Module, seed: int = 1) -> nn.Module:
    """Add seeded noise to every parameter, so that no bias or mapping stays at its init value.

    Initial values such as zero biases or unit input weights would let a missing term pass
    unnoticed; a trained model has none of them.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.add_(0.1 * noise)
    return model.eval()


# Every configuration the export tests cover: each LTC solver that can be exported, each CfC
# mode dense and wired (both connectivities), mixed memory, proj_size and both layouts.
LAYERS = {
    "ltc-fused-ncp": lambda: torchlnn.LTC(INPUT_SIZE, small_ncp(), ode_unfolds=4),
    "ltc-euler-time-major-last": lambda: torchlnn.LTC(
        INPUT_SIZE, small_ncp(), solver="euler", batch_first=False, return_sequences=False
    ),
    "ltc-rk4-mixed": lambda: torchlnn.LTC(
        INPUT_SIZE,
        6,
        solver="rk4",
        ode_unfolds=4,
        mixed_memory=True,
        input_mapping="linear",
        output_mapping="identity",
    ),
    "cfc-default-proj": lambda: torchlnn.CfC(INPUT_SIZE, 8, proj_size=3, backbone_units=16),
    "cfc-no_gate-2layers": lambda: torchlnn.CfC(
        INPUT_SIZE, 8, mode="no_gate", backbone_units=12, backbone_layers=2, activation="gelu"
    ),
    "cfc-pure-nobackbone": lambda: torchlnn.CfC(INPUT_SIZE, 8, mode="pure", backbone_layers=0),
    "cfc-wired-default": lambda: torchlnn.CfC(INPUT_SIZE, small_ncp()),
    "cfc-wired-no_gate-mixed": lambda: torchlnn.CfC(
        INPUT_SIZE, small_ncp(), mode="no_gate", mixed_memory=True
    ),
    "cfc-wired-pure-proj": lambda: torchlnn.CfC(INPUT_SIZE, small_ncp(), mode="pure", proj_size=2),
    "cfc-ncps-default-time-major": lambda: torchlnn.CfC(
        INPUT_SIZE, small_ncp(), connectivity="ncps", batch_first=False
    ),
    "cfc-ncps-pure-last": lambda: torchlnn.CfC(
        INPUT_SIZE, small_ncp(), mode="pure", connectivity="ncps", return_sequences=False
    ),
}

# A subset that still covers every exportable solver, every mode, both connectivities, mixed
# memory, proj_size and both layouts, for torch.export (a few seconds per model).
COVERING = [name for name in LAYERS if name not in ("cfc-pure-nobackbone", "cfc-wired-default")]

# The ONNX tests run this part of COVERING through torch.export and ONNX Runtime, and the
# torch.export tests take the rest, so that each model is exported once.
ONNX_SEQUENCE = ["ltc-fused-ncp", "cfc-wired-no_gate-mixed", "cfc-ncps-pure-last"]
PROGRAM_ONLY = [name for name in COVERING if name not in ONNX_SEQUENCE]


def build(name: str) -> nn.Module:
    """Return the layer ``name`` of ``LAYERS`` with perturbed, seeded parameters."""
    torch.manual_seed(0)
    return perturbed(LAYERS[name]())


def sequence_inputs(
    model: nn.Module, batch: int, steps: int, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(x, state, timespans)`` in the layer's layout, with random elapsed times."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, INPUT_SIZE, generator=generator)
    timespans = 0.05 + 0.5 * torch.rand(batch, steps, 1, generator=generator)
    state_size = model.state_size * (2 if model.mixed_memory else 1)
    state = 0.1 * torch.randn(batch, state_size, generator=generator)
    if not model.batch_first:
        x, timespans = x.transpose(0, 1), timespans.transpose(0, 1)
    return x, state, timespans


def reference(
    model: nn.Module, x: Tensor, state: Tensor, timespans: Tensor
) -> tuple[Tensor, Tensor]:
    """Return the eager layer's ``(output, final_state)`` with the state as one tensor."""
    units = model.state_size
    hx = (state[:, :units], state[:, units:]) if model.mixed_memory else state
    with torch.no_grad():
        output, h_n = model(x, hx, timespans)
    if model.mixed_memory:
        h_n = torch.cat(h_n, dim=-1)
    return output, h_n
