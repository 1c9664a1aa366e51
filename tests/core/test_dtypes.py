"""Precision and devices: float32, float64, bfloat16 autocast, and where hx is created."""

from __future__ import annotations

import pytest
import torch

from .helpers import cell_factories, layer_factories


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_layer_runs_in_dtype_and_creates_hx_alike(name, dtype):
    layer = layer_factories()[name]().to(dtype)
    output, h_n = layer(torch.randn(2, 5, 3, dtype=dtype), timespans=torch.rand(2, 5, dtype=dtype))
    assert output.dtype == dtype
    states = h_n if isinstance(h_n, tuple) else (h_n,)
    for state in states:
        assert state.dtype == dtype and state.device == output.device


@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_bfloat16_autocast_close_to_float32(name):
    layer = layer_factories()[name]()
    x = torch.randn(2, 5, 3)
    expected, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, h_n = layer(x)
    assert torch.isfinite(output.float()).all()
    # bfloat16 keeps about 3 significant digits; errors accumulate over the 5 steps.
    torch.testing.assert_close(output.float(), expected, rtol=0.1, atol=0.1)


@pytest.mark.parametrize("name", sorted(cell_factories()))
def test_cell_hx_none_uses_input_dtype(name):
    cell = cell_factories()[name]().double()
    output, h = cell(torch.randn(2, 3, dtype=torch.float64))
    assert h.dtype == torch.float64 and output.dtype == torch.float64
    assert h.shape == (2, cell.state_size)
