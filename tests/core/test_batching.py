"""The batch contract: batches equal their samples run alone, in every layout."""

from __future__ import annotations

import pytest
import torch

import torchlnn
from torchlnn.wirings import FullyConnected

from .helpers import cell_factories, layer_factories


@pytest.mark.parametrize("name", sorted(cell_factories()))
def test_cell_unbatched_equals_batch_of_one(name):
    cell = cell_factories()[name]().double()
    x = torch.randn(3, dtype=torch.float64)
    h = torch.randn(cell.state_size, dtype=torch.float64)
    output, state = cell(x, h, 0.7)
    batched_output, batched_state = cell(x[None], h[None], 0.7)
    torch.testing.assert_close(output, batched_output[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(state, batched_state[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(cell_factories()))
def test_cell_batch_equals_samples_with_their_own_dt(name):
    cell = cell_factories()[name]().double()
    batch = cell.state_size  # a wrong broadcast of dt against (B, N) would pass silently here
    x = torch.randn(batch, 3, dtype=torch.float64)
    h = torch.randn(batch, cell.state_size, dtype=torch.float64)
    dt = torch.rand(batch, dtype=torch.float64) * 2
    # The adaptive solver picks one step grid for the whole batch, so it agrees to its
    # tolerance (rtol 1e-7) rather than to rounding.
    atol = 1e-6 if "adaptive" in name else 1e-12
    output, state = cell(x, h, dt)
    for i in range(batch):
        alone_output, alone_state = cell(x[i : i + 1], h[i : i + 1], float(dt[i]))
        torch.testing.assert_close(output[i : i + 1], alone_output, rtol=0, atol=atol)
        torch.testing.assert_close(state[i : i + 1], alone_state, rtol=0, atol=atol)


@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_layer_batch_equals_samples_with_per_sample_timespans(name):
    layer = layer_factories()[name]().double()
    batch = layer.state_size
    x = torch.randn(batch, 5, 3, dtype=torch.float64)
    timespans = torch.rand(batch, 5, dtype=torch.float64) * 2
    output, h_n = layer(x, timespans=timespans)
    for i in range(batch):
        alone, alone_h = layer(x[i : i + 1], timespans=timespans[i : i + 1])
        torch.testing.assert_close(output[i : i + 1], alone, rtol=0, atol=1e-10)
        if isinstance(h_n, tuple):
            torch.testing.assert_close(h_n[0][i : i + 1], alone_h[0], rtol=0, atol=1e-10)
            torch.testing.assert_close(h_n[1][i : i + 1], alone_h[1], rtol=0, atol=1e-10)
        else:
            torch.testing.assert_close(h_n[i : i + 1], alone_h, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_layer_unbatched_equals_batch_of_one(name):
    layer = layer_factories()[name]().double()
    x = torch.randn(5, 3, dtype=torch.float64)
    timespans = torch.rand(5, dtype=torch.float64)
    output, h_n = layer(x, timespans=timespans)
    batched, batched_h = layer(x[None], timespans=timespans[None])
    torch.testing.assert_close(output, batched[0], rtol=0, atol=1e-12)
    first = h_n[0] if isinstance(h_n, tuple) else h_n
    first_batched = batched_h[0] if isinstance(batched_h, tuple) else batched_h
    torch.testing.assert_close(first, first_batched[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_time_major_equals_batch_first(name):
    torch.manual_seed(0)
    batch_first = layer_factories()[name]().double()
    torch.manual_seed(0)
    time_major = layer_factories()[name](batch_first=False).double()
    time_major.load_state_dict(batch_first.state_dict())
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    timespans = torch.rand(4, 6, dtype=torch.float64)
    expected, _ = batch_first(x, timespans=timespans)
    output, _ = time_major(x.transpose(0, 1), timespans=timespans.T)
    torch.testing.assert_close(output.transpose(0, 1), expected, rtol=0, atol=1e-12)


def test_cfc_per_sample_timespans_batch_first():
    model = torchlnn.CfC(input_size=32, units=128, batch_first=True)
    x = torch.randn(20, 80, 32)
    timespans = torch.full((20, 80), 0.1)
    output, h_n = model(x, timespans=timespans)
    assert output.shape == (20, 80, 128) and h_n.shape == (20, 128)
    for i in range(20):
        alone, _ = model(x[i : i + 1], timespans=timespans[i : i + 1])
        torch.testing.assert_close(output[i : i + 1], alone, rtol=0, atol=1e-6)
    with_last_axis, _ = model(x, timespans=timespans[..., None])
    assert torch.equal(with_last_axis, output)


def test_ltc_per_sample_timespans_both_layouts():
    torch.manual_seed(0)
    first = torchlnn.LTC(8, FullyConnected(32), ode_unfolds=4, batch_first=True)
    torch.manual_seed(0)
    second = torchlnn.LTC(8, FullyConnected(32), ode_unfolds=4, batch_first=False)
    second.load_state_dict(first.state_dict())
    x = torch.randn(16, 10, 8)
    timespans = torch.full((16, 10), 0.1)
    output, _ = first(x, timespans=timespans)
    assert output.shape == (16, 10, 32)
    for i in range(16):
        alone, _ = first(x[i : i + 1], timespans=timespans[i : i + 1])
        torch.testing.assert_close(output[i : i + 1], alone, rtol=0, atol=1e-6)
    time_major, _ = second(x.transpose(0, 1), timespans=timespans.T)
    assert time_major.shape == (10, 16, 32)
    torch.testing.assert_close(time_major.transpose(0, 1), output, rtol=0, atol=1e-6)
