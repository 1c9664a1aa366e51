"""Effective parameter counts against counts written out by hand."""

from __future__ import annotations

import torch

import torchlnn
from torchlnn.analysis import count_parameters
from torchlnn.wirings import NCP


def test_ltc_effective_count_matches_synapses():
    wiring = NCP(12, 6, 1, 6, 4, 6, 6)
    model = torchlnn.LTC(32, wiring)
    synapses, sensory = wiring.synapse_count, wiring.sensory_synapse_count
    # Per synapse: w, sigma, mu, E; per neuron: g_leak, v_leak, C_m; input and output maps.
    expected = 4 * synapses + 4 * sensory + 3 * 19 + 2 * 32 + 2 * 1
    assert count_parameters(model) == expected
    assert count_parameters(model, effective=False) == sum(p.numel() for p in model.parameters())


def test_wired_cfc_effective_count_drops_masked_entries():
    model = torchlnn.CfC(5, NCP(4, 3, 2, 2, 2, 3, 2))
    masked = sum(int((layer.mask == 0).sum()) for layer in model.rnn_cell.layers)
    full = sum(p.numel() for p in model.parameters())
    assert masked > 0
    assert count_parameters(model) == full - masked


def test_dense_modules_count_everything():
    lstm = torch.nn.LSTM(8, 16)
    assert count_parameters(lstm) == sum(p.numel() for p in lstm.parameters())
