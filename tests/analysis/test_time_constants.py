"""LTC system time constants along a sequence, against the cell's equations written out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.analysis import time_constants

from .models import TinyPolicy, small_ncp


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def tau_by_hand(cell, x, v):
    """C_m / (g_leak + sum_j w_ji s(sigma (v_j - mu)) + sum_k w^s_ki s(sigma^s (u_k - mu^s)))."""
    as_array = lambda tensor: tensor.detach().double().numpy()  # noqa: E731
    u = x * as_array(cell.input_w) + as_array(cell.input_b)
    cm, gleak = as_array(cell.cm), as_array(cell.gleak)
    w, sigma, mu = as_array(cell.w), as_array(cell.sigma), as_array(cell.mu)
    sw, ssigma, smu = as_array(cell.sensory_w), as_array(cell.sensory_sigma), as_array(
        cell.sensory_mu
    )
    units, inputs = w.shape[0], sw.shape[0]
    tau = np.empty(units)
    for i in range(units):
        conductance = gleak[i]
        for j in range(units):
            conductance += w[j, i] * sigmoid(sigma[j, i] * (v[j] - mu[j, i]))
        for k in range(inputs):
            conductance += sw[k, i] * sigmoid(ssigma[k, i] * (u[k] - smu[k, i]))
        tau[i] = cm[i] / conductance
    return tau


def test_time_constants_match_equation():
    layer = torchlnn.LTC(4, small_ncp())
    x = torch.randn(2, 6, 4) * 2
    hx = torch.randn(2, 10) * 0.3
    timespans = torch.rand(2, 6) + 0.2
    tau = time_constants(layer, x, hx=hx, timespans=timespans)
    states = layer.forward_with_states(x, hx, timespans=timespans).states.detach().double().numpy()
    for b in range(2):
        for t in range(6):
            start = hx[b].double().numpy() if t == 0 else states[b, t - 1]
            expected = tau_by_hand(layer.rnn_cell, x[b, t].double().numpy(), start)
            np.testing.assert_allclose(tau[b, t], expected, rtol=1e-5)


def test_time_constants_mixed_memory_start_state():
    layer = torchlnn.LTC(4, small_ncp(), mixed_memory=True)
    x = torch.randn(2, 5, 4)
    tau = time_constants(layer, x)

    # Run the layer's step by hand: the LSTM updates (h, c), the liquid step starts from h'.
    cell, lstm = layer.rnn_cell, layer.lstm
    h = torch.zeros(2, 10)
    c = torch.zeros(2, 10)
    with torch.no_grad():
        for t in range(5):
            h_memory, c = lstm(x[:, t], (h, c))
            expected = cell.time_constants(x[:, t], h_memory)
            np.testing.assert_allclose(tau[:, t], expected.numpy(), rtol=1e-5)
            _, h = cell(x[:, t], h_memory)


def test_time_constants_padded_steps_are_nan():
    layer = torchlnn.LTC(4, small_ncp())
    tau = time_constants(layer, torch.randn(3, 6, 4), lengths=[6, 3, 1])
    assert np.isnan(tau[1, 3:]).all()
    assert np.isnan(tau[2, 1:]).all()
    assert np.isfinite(tau[1, :3]).all()
    assert np.isfinite(tau[0]).all()


def test_time_constants_positive_and_input_dependent():
    layer = torchlnn.LTC(4, small_ncp())
    quiet = time_constants(layer, torch.full((1, 4, 4), -5.0))
    driven = time_constants(layer, torch.full((1, 4, 4), 5.0))
    assert (quiet > 0).all()
    assert (driven > 0).all()
    # Inter neurons receive the sensory synapses, so the input changes their time scale.
    inter = [i for i, kind in enumerate(layer.wiring.neuron_types()) if kind == "inter"]
    assert not np.allclose(quiet[..., inter], driven[..., inter])


def test_time_constants_inside_policy():
    torch.manual_seed(2)
    policy = TinyPolicy()
    frames = torch.rand(2, 4, 3, 24, 32)
    tau = time_constants(policy, frames)
    direct = time_constants(policy.rnn, policy.features(frames).detach())
    np.testing.assert_allclose(tau, direct, rtol=1e-6)


def test_time_constants_reject_cfc():
    with pytest.raises(TypeError, match="defined for LTC neurons"):
        time_constants(torchlnn.CfC(4, small_ncp()), torch.randn(1, 3, 4))
