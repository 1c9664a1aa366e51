"""The LTC cell against its own equations, values computed by hand, and its invariants."""

from __future__ import annotations

import pytest
import torch

import torchlnn
from torchlnn.cells import LTCCell
from torchlnn.wirings import AutoNCP, FullyConnected

from .helpers import set_ltc_values, small_ncp


def one_neuron_cell(erev: float) -> LTCCell:
    cell = LTCCell(
        FullyConnected(1, output_dim=1),
        in_features=1,
        input_mapping=None,
        output_mapping=None,
        ode_unfolds=1,
        epsilon=0.0,
    ).double()
    set_ltc_values(
        cell, gleak=1, vleak=0, cm=1, w=1, mu=0, sigma=1, sensory_w=1, sensory_mu=0,
        sensory_sigma=1, sensory_erev=1,
    )
    with torch.no_grad():
        cell.erev.fill_(erev)
        # FullyConnected draws polarities: make sure both synapses exist.
        cell.sparsity_mask.fill_(1.0)
        cell.sensory_sparsity_mask.fill_(1.0)
    return cell


def test_fused_step_reference_value_excitatory():
    # v' = (C v + dt (g_leak v_leak + sum g E)) / (C + dt (g_leak + sum g)), every g = 0.5.
    cell = one_neuron_cell(erev=1.0)
    output, h = cell(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    assert h.item() == pytest.approx(1.0 / 3.0, abs=1e-12)
    assert output.item() == pytest.approx(1.0 / 3.0, abs=1e-12)


def test_fused_step_reference_value_inhibitory_recurrence():
    cell = one_neuron_cell(erev=-1.0)
    _, h = cell(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    assert h.item() == pytest.approx(0.0, abs=1e-12)


def test_cell_matches_equation_written_out():
    torch.manual_seed(1)
    cell = LTCCell(small_ncp(), in_features=3, ode_unfolds=2, epsilon=0.0).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    v = torch.randn(4, 9, dtype=torch.float64)
    dt = torch.tensor([[0.3], [1.0], [2.0], [0.0]], dtype=torch.float64)

    # The update written with explicit loops over synapses, from the docstring.
    u = x * cell.input_w + cell.input_b
    w, sw = cell.w.detach(), cell.sensory_w.detach()
    expected = v.clone()
    for _ in range(2):
        new = torch.empty_like(expected)
        for b in range(4):
            for i in range(9):
                num = cell.gleak[i] * cell.vleak[i]
                den = cell.gleak[i].clone()
                for j in range(9):
                    g = w[j, i] * torch.sigmoid(cell.sigma[j, i] * (expected[b, j] - cell.mu[j, i]))
                    num, den = num + g * cell.erev[j, i], den + g
                for k in range(3):
                    g = sw[k, i] * torch.sigmoid(
                        cell.sensory_sigma[k, i] * (u[b, k] - cell.sensory_mu[k, i])
                    )
                    num, den = num + g * cell.sensory_erev[k, i], den + g
                h = dt[b, 0] / 2
                new[b, i] = (cell.cm[i] * expected[b, i] + h * num) / (cell.cm[i] + h * den)
        expected = new
    _, h = cell(x, v, dt)
    torch.testing.assert_close(h, expected.detach(), rtol=0, atol=1e-12)


def test_positive_parameters_stay_positive_after_large_steps():
    cell = LTCCell(AutoNCP(10, 2), in_features=3)
    optimiser = torch.optim.SGD(cell.parameters(), lr=1e4)
    for _ in range(3):
        optimiser.zero_grad()
        _, h = cell(torch.randn(8, 3), torch.randn(8, 10))
        (h.sum() * 1e3).backward()
        optimiser.step()
    for name in ("cm", "gleak"):
        assert (getattr(cell, name) > 0).all(), name
    assert (cell.w[cell.sparsity_mask > 0] > 0).all()
    assert (cell.sensory_w[cell.sensory_sparsity_mask > 0] > 0).all()


@pytest.mark.parametrize("dt", [1e-4, 1.0, 1e3, 1e6])
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_state_stays_within_theoretical_bounds(dt, scale):
    torch.manual_seed(2)
    cell = LTCCell(AutoNCP(12, 3), in_features=4, epsilon=0.0).double()
    with torch.no_grad():
        cell.erev.mul_(3.0)
        cell.vleak.mul_(5.0)
    h0 = torch.randn(16, 12, dtype=torch.float64) * 2
    low = min(h0.min(), cell.vleak.min(), cell.erev.min(), cell.sensory_erev.min())
    high = max(h0.max(), cell.vleak.max(), cell.erev.max(), cell.sensory_erev.max())
    h = h0
    for _ in range(20):
        _, h = cell(torch.randn(16, 4, dtype=torch.float64) * scale, h, dt)
        assert torch.isfinite(h).all()
        assert h.min() >= low - 1e-9
        assert h.max() <= high + 1e-9


def test_zero_elapsed_time_leaves_state_unchanged():
    cell = LTCCell(AutoNCP(12, 3), in_features=4)
    h0 = torch.randn(5, 12)
    _, h = cell(torch.randn(5, 4), h0, torch.zeros(5))
    torch.testing.assert_close(h, h0, rtol=0, atol=1e-6)
    _, h = cell(torch.randn(5, 4), torch.zeros(5, 12), 0.0)
    assert torch.equal(h, torch.zeros(5, 12))


def test_time_constants_match_equation():
    torch.manual_seed(3)
    cell = LTCCell(small_ncp(), in_features=3).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    v = torch.randn(2, 9, dtype=torch.float64)
    u = x * cell.input_w + cell.input_b
    synaptic = (cell.w * torch.sigmoid(cell.sigma * (v[:, :, None] - cell.mu))).sum(1)
    sensory = (
        cell.sensory_w * torch.sigmoid(cell.sensory_sigma * (u[:, :, None] - cell.sensory_mu))
    ).sum(1)
    expected = cell.cm / (cell.gleak + synaptic + sensory)
    torch.testing.assert_close(cell.time_constants(x, v), expected, rtol=1e-12, atol=0)
    assert cell.time_constants(x[0], v[0]).shape == (9,)


def test_time_constants_shrink_when_synapses_open():
    cell = LTCCell(FullyConnected(4), in_features=2).double()
    def constant(value, size):
        return torch.full((1, size), value, dtype=torch.float64)

    closed = cell.time_constants(constant(-50.0, 2), constant(-50.0, 4))
    opened = cell.time_constants(constant(50.0, 2), constant(50.0, 4))
    assert (opened < closed).all()


def test_masks_are_buffers_not_parameters():
    cell = LTCCell(AutoNCP(10, 2), in_features=3)
    names = {name for name, _ in cell.named_parameters()}
    buffers = {name for name, _ in cell.named_buffers()}
    assert "sparsity_mask" in buffers and "sensory_sparsity_mask" in buffers
    assert not {"sparsity_mask", "sensory_sparsity_mask"} & names
    assert "sparsity_mask" in cell.state_dict()
    moved = cell.to(torch.float64)
    assert moved.sparsity_mask.dtype == torch.float64


def test_parameter_count_counts_trainable_values_only():
    cell = LTCCell(FullyConnected(4), in_features=2)
    expected = 4 * 3 + 4 * 4 * 4 + 2 * 4 * 4 + 2 * 2 + 4 * 2
    assert sum(p.numel() for p in cell.parameters()) == expected


def test_invalid_cell_arguments_raise():
    with pytest.raises(ValueError, match="ode_unfolds"):
        LTCCell(FullyConnected(3), in_features=2, ode_unfolds=0)
    with pytest.raises(ValueError, match="input_mapping"):
        LTCCell(FullyConnected(3), in_features=2, input_mapping="quadratic")
    with pytest.raises(ValueError, match="solver"):
        LTCCell(FullyConnected(3), in_features=2, solver="midpoint")
    with pytest.raises(ValueError, match="number of input features"):
        LTCCell(FullyConnected(3))
    cell = LTCCell(FullyConnected(3), in_features=2)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        cell(torch.randn(4, 5))
    with pytest.raises(ValueError, match="hx"):
        cell(torch.randn(4, 2), torch.zeros(4, 7))
    with pytest.raises(ValueError, match="non-negative"):
        cell(torch.randn(4, 2), None, -1.0)
    with pytest.raises(ValueError, match=r"shape \(4,\) or \(4, 1\)"):
        cell(torch.randn(4, 2), None, torch.ones(3))


def test_implicit_param_constraints_false_warns_no_effect():
    with pytest.warns(UserWarning, match="no effect"):
        torchlnn.LTC(3, 4, implicit_param_constraints=False)
