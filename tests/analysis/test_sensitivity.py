"""Measured Lipschitz constants, the LTC bounds, and input-gradient sensitivity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchlnn
from torchlnn.analysis import input_sensitivity, lipschitz_estimate, ltc_lipschitz_bound

from .models import small_ncp


def step_jacobians(layer, x_t, h_previous, dt):
    """Finite-difference Jacobians of one layer step with respect to input and state."""
    cell = layer.rnn_cell

    def step(x, h):
        return cell.advance(cell.prepare_inputs(x[None]), h[None], dt)[0]

    eps = 1e-6
    base_x = torch.stack(
        [(step(x_t + eps * e, h_previous) - step(x_t - eps * e, h_previous)) / (2 * eps)
         for e in torch.eye(len(x_t), dtype=torch.float64)], dim=1)
    base_h = torch.stack(
        [(step(x_t, h_previous + eps * e) - step(x_t, h_previous - eps * e)) / (2 * eps)
         for e in torch.eye(len(h_previous), dtype=torch.float64)], dim=1)
    return base_x.numpy(), base_h.numpy()


@pytest.mark.parametrize("kind", ["ltc", "cfc"])
def test_estimate_matches_finite_differences(kind):
    layer = (torchlnn.LTC(4, small_ncp()) if kind == "ltc" else torchlnn.CfC(4, small_ncp()))
    layer = layer.double()
    x = torch.randn(2, 5, 4, dtype=torch.float64) * 2
    estimate = lipschitz_estimate(layer, x)
    states = layer.forward_with_states(x).states.detach()

    with torch.no_grad():
        for b, t in [(0, 0), (1, 3), (0, 4)]:
            h_previous = torch.zeros(10, dtype=torch.float64) if t == 0 else states[b, t - 1]
            jacobian_x, jacobian_h = step_jacobians(layer, x[b, t], h_previous, 1.0)
            np.testing.assert_allclose(estimate.input_norms[b, t],
                                       np.linalg.norm(jacobian_x, axis=1), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(estimate.state_norms[b, t],
                                       np.linalg.norm(jacobian_h, axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(estimate.input, estimate.input_norms.reshape(-1, 10).max(0))


def test_estimate_padded_steps_are_ignored():
    layer = torchlnn.CfC(4, small_ncp())
    estimate = lipschitz_estimate(layer, torch.randn(2, 6, 4), lengths=[6, 2])
    assert np.isnan(estimate.input_norms[1, 2:]).all()
    assert np.isfinite(estimate.input).all()


def test_estimate_rejects_torch_rnn():
    with pytest.raises(TypeError, match="needs a liquid layer"):
        lipschitz_estimate(nn.LSTM(4, 3, batch_first=True), torch.randn(1, 3, 4))


def vector_field(cell, x, v):
    """dv/dt = (numerator(v) - denominator(v) v) / C_m for one input x (I,) and state v (N,)."""
    numerator, denominator = cell.synaptic_terms(cell.prepare_inputs(x[None]))(v[None])
    return ((numerator - denominator * v[None]) / cell.cm)[0]


def test_bound_covers_vector_field_jacobians():
    torch.manual_seed(4)
    layer = torchlnn.LTC(4, small_ncp()).double()
    with torch.no_grad():  # a trained-looking cell: varied input weights and reversal potentials
        layer.rnn_cell.input_w.mul_(torch.tensor([0.5, 2.0, -1.5, 1.0], dtype=torch.float64))
        layer.rnn_cell.erev.mul_(1.3)
    cell = layer.rnn_cell
    bound = ltc_lipschitz_bound(layer)
    low, high = bound.state_range
    assert low <= -1.0  # the reversal potentials are +-1.3 here
    assert high >= 1.0

    worst_x = np.zeros(10)
    worst_v = np.zeros(10)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        x = torch.randn(4, generator=generator, dtype=torch.float64) * 3
        v = low + (high - low) * torch.rand(10, generator=generator, dtype=torch.float64)
        jacobian_x, jacobian_v = torch.autograd.functional.jacobian(
            lambda x_, v_: vector_field(cell, x_, v_), (x, v)
        )
        worst_x = np.maximum(worst_x, jacobian_x.norm(dim=1).numpy())
        worst_v = np.maximum(worst_v, jacobian_v.norm(dim=1).numpy())
    assert (worst_x <= bound.vector_field_input + 1e-12).all()
    assert (worst_v <= bound.vector_field_state + 1e-12).all()
    assert (bound.vector_field_input[worst_x > 0] > 0).all()


def test_step_bound_covers_measured_constants():
    torch.manual_seed(5)
    layer = torchlnn.LTC(4, small_ncp()).double()
    x = torch.randn(4, 15, 4, dtype=torch.float64) * 3
    estimate = lipschitz_estimate(layer, x, timespans=0.5)
    bound = ltc_lipschitz_bound(layer, dt=0.5)
    assert (estimate.input <= bound.step_input * (1 + 1e-9)).all()
    assert (estimate.state <= bound.step_state * (1 + 1e-9)).all()
    assert bound.dt == 0.5


def test_bound_of_other_solver_has_no_step_bound():
    layer = torchlnn.LTC(4, small_ncp(), solver="rk4")
    bound = ltc_lipschitz_bound(layer.rnn_cell)
    assert bound.step_input is None
    assert bound.vector_field_input.shape == (10,)
    with pytest.raises(TypeError, match="needs an LTC"):
        ltc_lipschitz_bound(torchlnn.CfC(4, 5))
    with pytest.raises(ValueError, match="low <= high"):
        ltc_lipschitz_bound(layer, state_range=(1.0, -1.0))


def test_input_sensitivity_is_causal():
    layer = torchlnn.LTC(4, small_ncp())
    x = torch.randn(3, 8, 4)
    sensitivity = input_sensitivity(layer, x, step=4)
    assert sensitivity.shape == (3, 8, 4)
    assert (sensitivity[:, 5:] == 0).all()  # the output at step 4 cannot see later inputs
    assert (sensitivity[:, :5].sum(axis=(1, 2)) > 0).all()


def test_input_sensitivity_matches_finite_difference():
    layer = torchlnn.CfC(4, small_ncp()).double()
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    gradient = input_sensitivity(layer, x, output_index=1, absolute=False)
    eps = 1e-6
    for b, t, f in [(0, 5, 2), (1, 2, 0)]:
        shifted = x.clone()
        shifted[b, t, f] += eps
        with torch.no_grad():
            difference = (layer(shifted)[0] - layer(x)[0])[b, -1, 1] / eps
        assert gradient[b, t, f] == pytest.approx(float(difference), rel=1e-4, abs=1e-8)


def test_input_sensitivity_for_lstm_baseline():
    class Baseline(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.head = nn.Linear(6, 1)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    sensitivity = input_sensitivity(Baseline(), torch.randn(2, 5, 4), step=2)
    assert (sensitivity[:, 3:] == 0).all()
    assert sensitivity[:, :3].max() > 0
    with pytest.raises(ValueError, match="one value per sample"):
        input_sensitivity(Baseline(), torch.randn(2, 5, 4), target=lambda y: y[..., 0])
