"""Sequence layers: the timespans contract, variable lengths, states, shapes and errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.wirings import NCP, AutoNCP, FullyConnected, Random

from .helpers import layer_factories


def both_layers():
    return {"cfc": torchlnn.CfC(6, 16), "ltc": torchlnn.LTC(6, 16)}


@pytest.mark.parametrize("name", ["cfc", "ltc"])
def test_timespans_forms_agree(name):
    model = both_layers()[name]
    x = torch.randn(3, 7, 6)
    as_float, _ = model(x, timespans=0.5)
    as_matrix, _ = model(x, timespans=torch.full((3, 7), 0.5))
    as_column, _ = model(x, timespans=torch.full((3, 7, 1), 0.5))
    as_scalar_tensor, _ = model(x, timespans=torch.tensor(0.5))
    assert torch.equal(as_float, as_matrix)
    assert torch.equal(as_matrix, as_column)
    assert torch.equal(as_matrix, as_scalar_tensor)
    default, _ = model(x)
    explicit_one, _ = model(x, timespans=1.0)
    assert torch.equal(default, explicit_one)


@pytest.mark.parametrize("name", ["cfc", "ltc"])
@pytest.mark.parametrize("shape", [(3, 7, 6), (3, 5), (7, 3, 1), (3, 7, 2), (21,)])
def test_timespans_wrong_shape_names_accepted_and_received(name, shape):
    model = both_layers()[name]
    with pytest.raises(ValueError) as error:
        model(torch.randn(3, 7, 6), timespans=torch.ones(shape))
    message = str(error.value)
    assert "(B, T) or (B, T, 1)" in message
    assert str(tuple(shape)) in message


@pytest.mark.parametrize("shape", [(3, 7, 6), (3, 7, 2)])
def test_per_feature_timespans_message_says_unsupported(shape):
    with pytest.raises(ValueError, match="A separate time per feature is not supported"):
        torchlnn.CfC(6, 16)(torch.randn(3, 7, 6), timespans=torch.ones(shape))


@pytest.mark.parametrize("shape", [(3, 5), (7, 3, 1), (21,)])
def test_wrong_length_timespans_message_skips_features(shape):
    with pytest.raises(ValueError) as error:
        torchlnn.CfC(6, 16)(torch.randn(3, 7, 6), timespans=torch.ones(shape))
    assert "per feature" not in str(error.value)


def test_timespans_time_major_message_names_time_major_shapes():
    model = torchlnn.CfC(6, 16, batch_first=False)
    with pytest.raises(ValueError, match=r"\(T, B\) or \(T, B, 1\)"):
        model(torch.randn(7, 3, 6), timespans=torch.ones(3, 7))


@pytest.mark.parametrize("name", ["cfc", "ltc"])
@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_timespans_negative_or_nan_raise(name, bad):
    model = both_layers()[name]
    timespans = torch.ones(3, 7)
    timespans[1, 2] = bad
    with pytest.raises(ValueError, match="non-negative"):
        model(torch.randn(3, 7, 6), timespans=timespans)
    with pytest.raises(ValueError, match="non-negative"):
        model(torch.randn(3, 7, 6), timespans=bad)


def test_zero_gap_keeps_ltc_state_and_cfc_finite():
    x = torch.randn(3, 7, 6)
    timespans = torch.ones(3, 7)
    timespans[:, 3] = 0.0
    ltc = torchlnn.LTC(6, 16)
    states = ltc.forward_with_states(x, timespans=timespans).states
    torch.testing.assert_close(states[:, 3], states[:, 2], rtol=0, atol=1e-6)
    cfc_output, cfc_h = torchlnn.CfC(6, 16)(x, timespans=timespans)
    assert torch.isfinite(cfc_output).all() and torch.isfinite(cfc_h).all()
    zero_start = ltc(x, timespans=torch.zeros(3, 7))[1]
    assert torch.equal(zero_start, torch.zeros(3, 16))


def test_one_long_gap_equals_two_short_gaps_with_same_sub_steps():
    torch.manual_seed(0)
    one_step = torchlnn.LTC(2, 8, ode_unfolds=64)
    two_steps = torchlnn.LTC(2, 8, ode_unfolds=32)
    two_steps.load_state_dict(one_step.state_dict())
    u = torch.randn(1, 1, 2)
    _, h_one = one_step(u, timespans=torch.full((1, 1), 2.0))
    _, h_two = two_steps(u.repeat(1, 2, 1), timespans=torch.full((1, 2), 1.0))
    torch.testing.assert_close(h_one, h_two, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["cfc", "ltc"])
def test_elapsed_time_reaches_the_cell(name):
    torch.manual_seed(0)
    model = {"cfc": torchlnn.CfC(2, 8), "ltc": torchlnn.LTC(2, 8)}[name]
    x = torch.randn(1, 10, 2)
    short, _ = model(x, timespans=torch.ones(1, 10))
    long, _ = model(x, timespans=torch.full((1, 10), 3.0))
    assert (short - long).abs().max() > 1e-4


@pytest.mark.parametrize("name", sorted(layer_factories()))
def test_lengths_equal_running_each_prefix_alone(name):
    layer = layer_factories()[name]().double()
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    timespans = torch.rand(4, 6, dtype=torch.float64)
    lengths = [6, 2, 4, 1]
    output, h_n = layer(x, timespans=timespans, lengths=lengths)
    h = h_n[0] if isinstance(h_n, tuple) else h_n
    for i, length in enumerate(lengths):
        alone, alone_h = layer(x[i : i + 1, :length], timespans=timespans[i : i + 1, :length])
        alone_h = alone_h[0] if isinstance(alone_h, tuple) else alone_h
        torch.testing.assert_close(output[i, :length], alone[0], rtol=0, atol=1e-12)
        assert torch.equal(output[i, length:], torch.zeros_like(output[i, length:]))
        torch.testing.assert_close(h[i], alone_h[0], rtol=0, atol=1e-12)


def test_mask_equals_lengths_and_last_output_without_sequences():
    torch.manual_seed(0)
    model = torchlnn.CfC(3, 6, return_sequences=False)
    x = torch.randn(3, 5, 3)
    lengths = torch.tensor([5, 3, 1])
    mask = torch.arange(5) < lengths[:, None]
    by_lengths, h_lengths = model(x, lengths=lengths)
    by_mask, h_mask = model(x, mask=mask)
    assert torch.equal(by_lengths, by_mask) and torch.equal(h_lengths, h_mask)
    for i in range(3):
        alone, _ = model(x[i : i + 1, : int(lengths[i])])
        torch.testing.assert_close(by_lengths[i : i + 1], alone, rtol=0, atol=1e-6)


def test_invalid_lengths_and_masks_raise():
    model = torchlnn.CfC(3, 6)
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"\[0, T=5\]"):
        model(x, lengths=[6, 2])
    with pytest.raises(ValueError, match="one entry per sample"):
        model(x, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match="bool"):
        model(x, mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="either lengths or mask"):
        model(x, lengths=[1, 2], mask=torch.ones(2, 5, dtype=torch.bool))


def test_states_equal_stepping_the_cell_and_roles_match_wiring():
    wiring = NCP(6, 4, 2, 3, 2, 3, 2, seed=2)
    for model in (torchlnn.LTC(3, wiring), torchlnn.CfC(3, NCP(6, 4, 2, 3, 2, 3, 2, seed=2))):
        x = torch.randn(2, 7, 3)
        result = model.forward_with_states(x)
        assert result.states.shape == (2, 7, 12)
        h = torch.zeros(2, 12)
        for t in range(7):
            _, h = model.rnn_cell(x[:, t], h)
            torch.testing.assert_close(result.states[:, t], h, rtol=0, atol=1e-6)
        roles = [model.wiring.get_type_of_neuron(i) for i in range(12)]
        assert roles[:2] == ["motor", "motor"]
        assert roles[2:6] == ["command"] * 4 and roles[6:] == ["inter"] * 6
        motor = model.rnn_cell.readout(result.states)
        torch.testing.assert_close(result.output, motor, rtol=0, atol=0)
    # The LTC's output is the two motor neurons through its affine output mapping.
    ltc = torchlnn.LTC(3, NCP(6, 4, 2, 3, 2, 3, 2, seed=2))
    with torch.no_grad():
        ltc.rnn_cell.output_w.uniform_(0.5, 2.0)
        ltc.rnn_cell.output_b.uniform_(-1.0, 1.0)
        result = ltc.forward_with_states(torch.randn(2, 7, 3))
    cell = ltc.rnn_cell
    expected = result.states[..., :2] * cell.output_w + cell.output_b
    torch.testing.assert_close(result.output, expected, rtol=1e-6, atol=1e-6)
    cfc = torchlnn.CfC(3, NCP(6, 4, 2, 3, 2, 3, 2, seed=2))
    result = cfc.forward_with_states(torch.randn(2, 7, 3))
    torch.testing.assert_close(result.output, result.states[..., :2], rtol=0, atol=0)


def test_four_dimensional_input_raises_with_recipe():
    with pytest.raises(ValueError) as error:
        torchlnn.CfC(14, 32)(torch.randn(2, 128, 14, 4))
    message = str(error.value)
    assert "(B, T, F)" in message and "(T, F)" in message and "4 dims" in message
    assert "flatten" in message.lower()
    output, _ = torchlnn.CfC(56, 32, proj_size=56)(torch.randn(2, 128, 14, 4).flatten(2))
    assert output.shape == (2, 128, 56)


@pytest.mark.parametrize("make", [lambda: torchlnn.CfC(4, 8), lambda: torchlnn.LTC(4, 8)])
def test_one_dimensional_input_raises_with_reshape(make):
    layer = make()
    with pytest.raises(ValueError) as error:
        layer(torch.randn(4))
    message = str(error.value)
    assert "1 dims" in message
    assert "input.view(1, -1)" in message
    assert "flatten" not in message.lower()
    output, _ = layer(torch.randn(4).view(1, -1))
    assert output.shape == (1, 8)


EMPTY_BATCH_LAYERS = {
    "ltc-fused": lambda: torchlnn.LTC(3, AutoNCP(10, 2)),
    "ltc-euler": lambda: torchlnn.LTC(3, AutoNCP(10, 2), solver="euler", ode_unfolds=8),
    "ltc-rk4": lambda: torchlnn.LTC(3, AutoNCP(10, 2), solver="rk4"),
    "cfc": lambda: torchlnn.CfC(3, 8),
    "wired-cfc": lambda: torchlnn.CfC(3, AutoNCP(10, 2)),
}


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name", sorted(EMPTY_BATCH_LAYERS))
def test_empty_batch_gives_empty_outputs(name, fast):
    layer = EMPTY_BATCH_LAYERS[name]()
    layer.fast_path = fast
    layer.rnn_cell.fast_path = fast
    x = torch.randn(0, 5, 3, requires_grad=True)

    output, h_n = layer(x, timespans=torch.rand(0, 5))
    output.sum().backward()
    with torch.no_grad():
        last, _ = layer(x)
    layer.return_sequences = False
    final, _ = layer(x)
    h0 = torch.zeros(0, layer.state_size)
    with torch.no_grad():
        step_output, step_state = layer.rnn_cell(torch.randn(0, 3), h0)

    assert output.shape == (0, 5, layer.output_size)
    assert h_n.shape == (0, layer.state_size)
    assert x.grad.shape == (0, 5, 3)
    assert last.shape == (0, 5, layer.output_size)
    assert final.shape == (0, layer.output_size)
    assert step_output.shape == (0, layer.output_size)
    assert step_state.shape == (0, layer.state_size)


@pytest.mark.parametrize("make", [lambda: torchlnn.CfC(4, 8), lambda: torchlnn.LTC(4, 8)])
def test_zero_steps_raise_clear_error(make):
    layer = make()
    for x in (torch.randn(2, 0, 4), torch.randn(0, 4)):
        with pytest.raises(ValueError, match="at least one time step") as error:
            layer(x)
        assert str(tuple(x.shape)) in str(error.value)
        assert "lengths" in str(error.value)


def test_autoncp_shapes_with_and_without_sequences():
    output, h_n = torchlnn.CfC(104, AutoNCP(64, 8), return_sequences=True)(torch.randn(3, 20, 104))
    assert output.shape == (3, 20, 8) and h_n.shape == (3, 64)
    output, _ = torchlnn.CfC(104, AutoNCP(64, 8), return_sequences=False)(torch.randn(3, 20, 104))
    assert output.shape == (3, 8)


def test_int_units_equal_fully_connected_and_output_sizes():
    torch.manual_seed(5)
    by_int = torchlnn.LTC(3, 10)
    torch.manual_seed(5)
    by_wiring = torchlnn.LTC(3, FullyConnected(10))
    for (name, a), (_, b) in zip(by_int.state_dict().items(), by_wiring.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(2, 4, 3)
    assert torch.equal(by_int(x)[0], by_wiring(x)[0])
    assert by_int.output_size == 10 and by_int.wiring.input_dim == 3
    two_motor = torchlnn.LTC(3, FullyConnected(10, output_dim=2))
    output, h_n = two_motor(x)
    assert output.shape == (2, 4, 2)
    assert two_motor.wiring.neuron_types()[:2] == ["motor", "motor"]
    assert set(two_motor.wiring.neuron_types()[2:]) == {"inter"}
    assert torchlnn.CfC(3, 10, proj_size=2)(x)[0].shape == (2, 4, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torchlnn.LTC(5, AutoNCP(12, 3)),
        lambda: torchlnn.CfC(5, FullyConnected(12)),
        lambda: torchlnn.CfC(5, Random(12, 3, sparsity_level=0.5)),
        lambda: torchlnn.LTC(5, NCP(4, 3, 2, 2, 2, 2, 2)),
        lambda: torchlnn.CfC(5, 12, mixed_memory=True),
    ],
)
def test_deepcopy_keeps_wiring_and_outputs(make):
    model = make()
    clone = copy.deepcopy(model)
    x = torch.randn(2, 6, 5)
    assert torch.equal(model(x)[0], clone(x)[0])
    if model.wiring is not None:
        assert np.array_equal(model.wiring.adjacency_matrix, clone.wiring.adjacency_matrix)
        assert np.array_equal(
            model.wiring.sensory_adjacency_matrix, clone.wiring.sensory_adjacency_matrix
        )
    backward = copy.deepcopy(model)
    both = torch.cat([model(x)[0], backward(x.flip(1))[0].flip(1)], dim=-1)
    assert both.shape == (2, 6, 2 * model.output_size)


def test_hx_checks_and_mixed_memory_state():
    model = torchlnn.CfC(3, 6, mixed_memory=True)
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match=r"tuple \(h, c\)"):
        model(x, torch.zeros(2, 6))
    output, (h, c) = model(x, (torch.zeros(2, 6), torch.zeros(2, 6)))
    assert h.shape == c.shape == (2, 6)
    plain = torchlnn.CfC(3, 6)
    with pytest.raises(ValueError, match=r"\(2, 6\)"):
        plain(x, torch.zeros(3, 6))
    with pytest.raises(ValueError, match=r"\(6,\)"):
        plain(x[0], torch.zeros(1, 6))


def test_wired_cfc_rejects_backbone_options():
    with pytest.raises(ValueError, match="backbone_units"):
        torchlnn.CfC(3, AutoNCP(10, 2), backbone_units=64)


def test_input_size_mismatch_and_wrong_types_raise():
    model = torchlnn.LTC(3, 6)
    with pytest.raises(ValueError, match="input_size=3"):
        model(torch.randn(2, 4, 5))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(2, 4, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="units"):
        torchlnn.CfC(3, "six")
