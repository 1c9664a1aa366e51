"""float64 gradcheck of every cell, mode and solver, and gradient health on long sequences."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import torchlnn

from .helpers import cell_factories, layer_factories


@pytest.mark.parametrize("name", sorted(cell_factories()))
def test_cell_gradcheck_float64(name):
    torch.manual_seed(0)
    cell = cell_factories()[name]().double()
    parameters = [p for p in cell.parameters()]
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = (0.5 * torch.randn(2, cell.state_size, dtype=torch.float64)).requires_grad_()
    dt = torch.tensor([[0.7], [1.3]], dtype=torch.float64, requires_grad=True)

    def run(x, h, dt, *params):
        output, state = cell(x, h, dt)
        return output, state

    assert gradcheck(run, (x, h, dt, *parameters), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_layer_gradcheck_float64(name):
    torch.manual_seed(0)
    layer = layer_factories()[name]().double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    timespans = (0.5 + torch.rand(2, 4, dtype=torch.float64)).requires_grad_()

    def run(x, timespans):
        output, _ = layer(x, timespans=timespans)
        return output

    assert gradcheck(run, (x, timespans), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "make",
    [lambda: torchlnn.LTC(4, 16), lambda: torchlnn.CfC(4, 16)],
    ids=["ltc", "cfc"],
)
def test_gradients_finite_and_bounded_on_long_sequences(make):
    torch.manual_seed(0)
    model = make()
    output, _ = model(torch.randn(8, 500, 4))
    output[:, -1].pow(2).mean().backward()
    norms = []
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name
        norms.append(parameter.grad.norm())
    total = torch.stack(norms).norm()
    # Measured at 0.19-0.31 over seeds 0-2 at init; the bound guards against regressions.
    assert total < 10.0
