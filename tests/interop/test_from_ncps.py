"""Parity with the ncps package: converted modules compute what the ncps modules compute."""

from __future__ import annotations

import pytest
import torch

import torchlnn
from torchlnn.interop.ncps import from_ncps, state_from_ncps, state_to_ncps

ncps_torch = pytest.importorskip("ncps.torch")
ncps_wirings = pytest.importorskip("ncps.wirings")


def ncps_modules():
    w = ncps_wirings
    return {
        "cfc-default": lambda: ncps_torch.CfC(5, 16),
        "cfc-no_gate-2-layers-proj": lambda: ncps_torch.CfC(
            5, 16, mode="no_gate", backbone_layers=2, backbone_units=20, proj_size=3
        ),
        "cfc-pure-silu": lambda: ncps_torch.CfC(5, 16, mode="pure", activation="silu"),
        "cfc-no-backbone": lambda: ncps_torch.CfC(5, 16, backbone_layers=0),
        "cfc-mixed": lambda: ncps_torch.CfC(5, 16, mixed_memory=True, return_sequences=False),
        "cfc-time-major": lambda: ncps_torch.CfC(5, 16, batch_first=False),
        "wired-cfc-autoncp": lambda: ncps_torch.CfC(5, w.AutoNCP(16, 3)),
        "wired-cfc-ncp-pure": lambda: ncps_torch.CfC(5, w.NCP(5, 4, 2, 3, 2, 4, 2), mode="pure"),
        "wired-cfc-no_gate-mixed": lambda: ncps_torch.CfC(
            5, w.AutoNCP(14, 2), mode="no_gate", mixed_memory=True
        ),
        "wired-cfc-fully-connected": lambda: ncps_torch.CfC(5, w.FullyConnected(8, 3)),
        "ltc-autoncp": lambda: ncps_torch.LTC(5, w.AutoNCP(16, 3)),
        "ltc-int-mixed": lambda: ncps_torch.LTC(5, 10, mixed_memory=True),
        "ltc-linear-mappings": lambda: ncps_torch.LTC(
            5, w.Random(8, 2, sparsity_level=0.3), input_mapping="linear", output_mapping="linear",
            ode_unfolds=3,
        ),
        "ltc-explicit-constraints": lambda: ncps_torch.LTC(
            5, w.FullyConnected(6, 2), implicit_param_constraints=False
        ),
    }


@pytest.mark.parametrize("name", sorted(ncps_modules()))
def test_converted_layer_matches_ncps_outputs(name):
    torch.manual_seed(0)
    module = ncps_modules()[name]()
    module.eval()
    converted = from_ncps(module)
    x = torch.randn(3, 12, 5)
    if not module.batch_first:
        x = x.transpose(0, 1)
    units = module.state_size
    h0 = torch.randn(3, units) * 0.5
    c0 = torch.randn(3, units) * 0.5
    ncps_hx = (h0, c0) if module.use_mixed else h0
    ours_hx = (
        (state_from_ncps(converted, h0), state_from_ncps(converted, c0))
        if module.use_mixed
        else state_from_ncps(converted, h0)
    )
    with torch.no_grad():
        expected, expected_h = module(x, ncps_hx)
        output, h_n = converted(x, ours_hx)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-5)
    ours_states = h_n if module.use_mixed else (h_n,)
    ncps_states = expected_h if module.use_mixed else (expected_h,)
    for ours, theirs in zip(ours_states, ncps_states):
        torch.testing.assert_close(state_to_ncps(converted, ours), theirs, rtol=0, atol=1e-5)


def test_converted_layer_matches_with_batch_one_timespans():
    torch.manual_seed(1)
    for module in (ncps_torch.CfC(4, 8), ncps_torch.LTC(4, ncps_wirings.AutoNCP(10, 2))):
        converted = from_ncps(module.eval())
        x = torch.randn(1, 9, 4)
        timespans = torch.rand(1, 9) * 2
        with torch.no_grad():
            torch.testing.assert_close(
                converted(x, timespans=timespans)[0],
                module(x, timespans=timespans)[0],
                rtol=0,
                atol=1e-5,
            )


@pytest.mark.parametrize(
    "make",
    [
        lambda: ncps_torch.CfCCell(4, 7, mode="no_gate"),
        lambda: ncps_torch.LTCCell(ncps_wirings.AutoNCP(10, 2), in_features=4),
        lambda: ncps_torch.WiredCfCCell(4, ncps_wirings.NCP(4, 3, 2, 2, 2, 3, 2)),
    ],
    ids=["cfc-cell", "ltc-cell", "wired-cfc-cell"],
)
def test_converted_cell_matches_ncps_step(make):
    torch.manual_seed(2)
    cell = make()
    converted = from_ncps(cell)
    x = torch.randn(3, 4)
    units = converted.state_size
    h = torch.randn(3, units) * 0.5
    with torch.no_grad():
        expected_output, expected_h = cell(x, h, 0.7)
        output, state = converted(x, state_from_ncps(converted, h), 0.7)
    torch.testing.assert_close(output, expected_output, rtol=0, atol=1e-5)
    torch.testing.assert_close(state_to_ncps(converted, state), expected_h, rtol=0, atol=1e-5)


def test_converted_wiring_keeps_ncps_structure():
    wiring = ncps_wirings.NCP(5, 4, 2, 3, 2, 4, 2)
    module = ncps_torch.LTC(6, wiring)
    converted = from_ncps(module)
    assert (converted.wiring.adjacency_matrix == wiring.adjacency_matrix).all()
    assert (converted.wiring.sensory_adjacency_matrix == wiring.sensory_adjacency_matrix).all()
    assert converted.wiring.neuron_types() == [wiring.get_type_of_neuron(i) for i in range(11)]
    assert isinstance(converted, torchlnn.LTC)


def test_negative_explicit_conductance_raises_with_fix():
    cell = ncps_torch.LTCCell(ncps_wirings.FullyConnected(4), in_features=2)
    with torch.no_grad():
        cell._params["w"][0, 0] = -0.5
    with pytest.raises(ValueError, match="apply_weight_constraints"):
        from_ncps(cell)


def test_non_ncps_module_raises_type_error():
    with pytest.raises(TypeError, match="ncps.torch module"):
        from_ncps(torch.nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="ncps.torch module"):
        from_ncps(torchlnn.CfC(3, 4))
