"""Absent synapses have no effect and present ones do: one-step Jacobians against the wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from torchlnn.cells import LTCCell, WiredCfCCell

from .helpers import MODES, wiring_factories

NONZERO = 1e-12


def nonzero(matrix: torch.Tensor) -> np.ndarray:
    return (matrix.abs() > NONZERO).numpy()


@pytest.mark.parametrize("name", sorted(wiring_factories()))
def test_ltc_jacobian_matches_wiring(name):
    torch.manual_seed(0)
    wiring = wiring_factories()[name]()
    cell = LTCCell(wiring, in_features=4, ode_unfolds=1).double()
    x = torch.randn(4, dtype=torch.float64)
    h = torch.randn(wiring.units, dtype=torch.float64)

    d_state = jacobian(lambda v: cell(x, v)[1], h)  # [dst, src]
    d_input = jacobian(lambda u: cell(u, h)[1], x)  # [dst, src]

    adjacency = wiring.adjacency_matrix != 0
    expected_state = adjacency.T | np.eye(wiring.units, dtype=bool)  # own membrane always
    assert (nonzero(d_state) == expected_state).all()
    assert (nonzero(d_input) == (wiring.sensory_adjacency_matrix != 0).T).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(wiring_factories()))
def test_wired_cfc_layer_jacobians_match_wiring(name, mode):
    torch.manual_seed(0)
    wiring = wiring_factories()[name]()
    cell = WiredCfCCell(4, wiring, mode=mode).double()
    adjacency = wiring.adjacency_matrix != 0
    sensory = wiring.sensory_adjacency_matrix != 0
    layers = wiring.layers()
    x = torch.randn(4, dtype=torch.float64)
    h = torch.randn(wiring.units, dtype=torch.float64)

    for index, layer in enumerate(cell.layers):
        ids = layers[index]
        previous = layers[index - 1] if index > 0 else []
        fresh = torch.randn(1, max(len(previous), 1), dtype=torch.float64)

        def step(x_, fresh_, h_, layer=layer):
            return layer.advance(layer.prepare_inputs(x_[None]), fresh_, h_[None], 0.8)[0]

        d_input, d_fresh, d_state = jacobian(step, (x, fresh, h))

        assert (nonzero(d_input) == sensory[:, ids].T).all()
        if previous:
            assert (nonzero(d_fresh[:, 0, :]) == adjacency[np.ix_(previous, ids)].T).all()
        expected_state = adjacency[:, ids].T.copy()
        expected_state[:, previous] = False  # read fresh, never from the previous state
        for row, i in enumerate(ids):
            expected_state[row, i] = True  # each neuron's own memory
        assert (nonzero(d_state) == expected_state).all()


def test_command_recurrence_present_in_both_cells():
    from torchlnn.wirings import NCP

    wiring = NCP(4, 3, 1, 2, 2, 4, 2, seed=7)
    wiring.build(2)
    command = [1, 2, 3]
    pairs = [(s, d) for s in command for d in command if s != d and wiring.adjacency_matrix[s, d]]
    assert pairs, "seed 7 gives at least one recurrent command synapse between two neurons"
    ltc = LTCCell(wiring, ode_unfolds=1).double()
    cfc = WiredCfCCell(None, wiring).double()
    x = torch.randn(2, dtype=torch.float64)
    h = torch.randn(8, dtype=torch.float64)
    d_ltc = jacobian(lambda v: ltc(x, v)[1], h)
    d_cfc = jacobian(lambda v: cfc(x, v)[1], h)
    for src, dst in pairs:
        assert d_ltc[dst, src].abs() > NONZERO
        assert d_cfc[dst, src].abs() > NONZERO
