from __future__ import annotations

import pytest
import torch

from torchlnn.training.models import (
    MODEL_NAMES,
    TIME_AWARE,
    build_sequence_model,
    count_parameters,
    last_step,
)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_maps_sequences(name):
    model = build_sequence_model(name, input_size=3, output_size=2, units=6)
    inputs = torch.randn(4, 5, 3)
    timespans = torch.rand(4, 5) + 0.5
    mask = torch.ones(4, 5, dtype=torch.bool)
    output = model(inputs, timespans, mask)
    assert output.shape == (4, 5, 2)
    assert model.time_aware == (name in TIME_AWARE)
    assert count_parameters(model) > 0


@pytest.mark.parametrize("name", ["ltc", "cfc", "ctrnn"])
def test_time_aware_models_use_timespans(name):
    model = build_sequence_model(name, input_size=2, output_size=1, units=5)
    inputs = torch.randn(2, 4, 2)
    short = model(inputs, torch.full((2, 4), 0.1), None)
    long = model(inputs, torch.full((2, 4), 3.0), None)
    assert not torch.allclose(short, long)


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="ltc, cfc"):
        build_sequence_model("transformer", 2, 1, 4)


def test_last_step_reads_each_length():
    outputs = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    assert last_step(outputs, mask).flatten().tolist() == [2.0, 4.0]
    assert last_step(outputs, None).flatten().tolist() == [3.0, 7.0]


def test_ltc_parameter_count_matches_the_paper_layout():
    # 32 dense LTC neurons on 17 inputs with affine input and output mappings, then a
    # linear read-out to 17: every value counted once, masks excluded.
    model = build_sequence_model("ltc", input_size=17, output_size=17, units=32)
    n, i, o = 32, 17, 17
    synapses = 4 * n * n  # w, sigma, mu, erev
    sensory = 4 * i * n
    neurons = 3 * n  # gleak, vleak, cm
    mappings = 2 * i + 2 * n
    readout = n * o + o
    assert count_parameters(model) == synapses + sensory + neurons + mappings + readout
