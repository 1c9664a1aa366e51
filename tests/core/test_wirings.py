"""Wirings: structure, seeds, validation and exact config round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

import torchlnn
from torchlnn.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring, from_config

from .helpers import wiring_factories


def built(wiring, input_dim=5):
    wiring.build(input_dim)
    return wiring


@pytest.mark.parametrize("name", sorted(wiring_factories()))
def test_config_round_trip_through_json(name):
    wiring = built(wiring_factories()[name]())
    config = json.loads(json.dumps(wiring.get_config()))
    rebuilt = from_config(config)

    assert type(rebuilt) is type(wiring)
    assert np.array_equal(rebuilt.adjacency_matrix, wiring.adjacency_matrix)
    assert np.array_equal(rebuilt.sensory_adjacency_matrix, wiring.sensory_adjacency_matrix)
    assert rebuilt.neuron_types() == wiring.neuron_types()
    assert rebuilt.layers() == wiring.layers()
    assert rebuilt.get_config() == config
    assert type(wiring).from_config(config).get_config() == config


@pytest.mark.parametrize("name", sorted(wiring_factories()))
def test_unbuilt_config_round_trip(name):
    wiring = wiring_factories()[name]()
    rebuilt = from_config(json.loads(json.dumps(wiring.get_config())))
    assert not rebuilt.is_built()
    assert np.array_equal(rebuilt.adjacency_matrix, wiring.adjacency_matrix)


class TwoLayerCircuit(Wiring):
    """A user circuit with custom neuron roles and layers, as a user would subclass."""

    def __init__(self):
        super().__init__(5)
        self.set_output_dim(1)
        self.add_synapse(4, 1, 1)
        self.add_synapse(3, 2, -1)
        self.add_synapse(1, 0, 1)
        self.add_synapse(2, 0, -1)

    @property
    def num_layers(self):
        return 3

    def get_neurons_of_layer(self, layer_id):
        return [[3, 4], [1, 2], [0]][layer_id]

    def get_type_of_neuron(self, neuron_id):
        return ["motor", "relay", "relay", "receptor", "receptor"][neuron_id]

    def build(self, input_dim):
        super().build(input_dim)
        for k in range(input_dim):
            self.add_sensory_synapse(k, 3 + k % 2, 1)


def test_user_subclass_round_trip_keeps_structure():
    wiring = built(TwoLayerCircuit(), 3)
    rebuilt = from_config(json.loads(json.dumps(wiring.get_config())))
    assert rebuilt.neuron_types() == ["motor", "relay", "relay", "receptor", "receptor"]
    assert rebuilt.layers() == [[3, 4], [1, 2], [0]]
    assert np.array_equal(rebuilt.adjacency_matrix, wiring.adjacency_matrix)
    assert np.array_equal(rebuilt.sensory_adjacency_matrix, wiring.sensory_adjacency_matrix)


def test_ncp_structure_matches_its_arguments():
    wiring = built(NCP(12, 6, 1, 6, 4, 6, 6, seed=1), 32)
    adjacency, sensory = wiring.adjacency_matrix, wiring.sensory_adjacency_matrix
    motor, command, inter = range(0, 1), range(1, 7), range(7, 19)

    assert wiring.units == 19 and wiring.output_dim == 1
    assert [wiring.get_type_of_neuron(i) for i in motor] == ["motor"]
    assert {wiring.get_type_of_neuron(i) for i in command} == {"command"}
    assert {wiring.get_type_of_neuron(i) for i in inter} == {"inter"}
    assert wiring.layers() == [list(inter), list(command), list(motor)]
    # Sensory synapses reach inter neurons only, each input exactly sensory_fanout of them.
    assert not sensory[:, :7].any()
    assert (np.count_nonzero(sensory[:, 7:], axis=1) >= 6).all()
    assert np.count_nonzero(sensory) >= 32 * 6
    # Every inter neuron has an input, every command neuron an inter input and a motor target.
    assert (np.count_nonzero(sensory[:, 7:], axis=0) >= 1).all()
    assert (np.count_nonzero(adjacency[7:, 1:7], axis=0) >= 1).all()
    assert (np.count_nonzero(adjacency[1:7, 0:1], axis=1) >= 1).all()
    # Inter -> command fanout, command recurrence, command -> motor fanin.
    assert (np.count_nonzero(adjacency[7:, 1:7], axis=1) >= 4).all()
    assert np.count_nonzero(adjacency[1:7, 1:7]) == 6
    assert np.count_nonzero(adjacency[1:7, 0]) == 6
    # No synapse skips a layer or runs backwards.
    assert not adjacency[7:, 7:].any() and not adjacency[7:, 0].any()
    assert not adjacency[0, :].any()
    assert set(np.unique(adjacency)) <= {-1, 0, 1}


def test_same_seed_gives_same_matrices_and_other_seed_differs():
    first, second = built(AutoNCP(16, 4, seed=3)), built(AutoNCP(16, 4, seed=3))
    other = built(AutoNCP(16, 4, seed=4))
    assert np.array_equal(first.adjacency_matrix, second.adjacency_matrix)
    assert np.array_equal(first.sensory_adjacency_matrix, second.sensory_adjacency_matrix)
    assert not np.array_equal(first.adjacency_matrix, other.adjacency_matrix)


def test_internal_synapses_do_not_depend_on_input_size():
    assert np.array_equal(
        built(NCP(5, 4, 2, 3, 2, 4, 2), 3).adjacency_matrix,
        built(NCP(5, 4, 2, 3, 2, 4, 2), 30).adjacency_matrix,
    )


def test_fully_connected_and_random_counts():
    full = built(FullyConnected(6, self_connections=False), 4)
    assert full.synapse_count == 30
    assert full.sensory_synapse_count == 24
    assert not np.diag(full.adjacency_matrix).any()
    sparse = built(Random(10, sparsity_level=0.7, seed=1), 4)
    assert sparse.synapse_count == 30
    assert sparse.sensory_synapse_count == 12


@pytest.mark.parametrize("level", [-0.1, 0.95, 1.0])
def test_autoncp_sparsity_outside_range_names_value_and_bounds(level):
    low, high = AutoNCP.SPARSITY_RANGE
    with pytest.raises(ValueError) as error:
        AutoNCP(16, 4, sparsity_level=level)
    message = str(error.value)
    assert str(level) in message
    assert str(low) in message and str(high) in message


@pytest.mark.parametrize("level", [0.0, 0.05, AutoNCP.SPARSITY_RANGE[0], AutoNCP.SPARSITY_RANGE[1]])
def test_autoncp_sparsity_inside_range_builds(level):
    wiring = built(AutoNCP(16, 4, sparsity_level=level))
    assert wiring.units == 16 and wiring.output_dim == 4


def test_autoncp_sparsity_bounds_are_the_checked_bounds():
    low, high = AutoNCP.SPARSITY_RANGE
    AutoNCP(16, 4, sparsity_level=low)
    AutoNCP(16, 4, sparsity_level=high)
    with pytest.raises(ValueError):
        AutoNCP(16, 4, sparsity_level=np.nextafter(high, 2.0))
    with pytest.raises(ValueError):
        AutoNCP(16, 4, sparsity_level=np.nextafter(low, -1.0))


def test_autoncp_sparsity_string_raises_type_error():
    with pytest.raises(TypeError, match="sparsity_level"):
        AutoNCP(16, 4, sparsity_level="0.5")


def test_autoncp_too_many_outputs_states_rule_and_numbers():
    with pytest.raises(ValueError) as error:
        AutoNCP(10, 8)
    message = str(error.value)
    assert "units=10" in message and "output_size=8" in message
    assert "units - 3" in message


def test_wiring_rejects_layer_option_with_hint():
    with pytest.raises(TypeError) as error:
        AutoNCP(32, 4, return_sequences=True)
    assert "return_sequences" in str(error.value)
    assert "layer" in str(error.value)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: NCP(4, 3, 2, 5, 2, 3, 2), "sensory_fanout"),
        (lambda: NCP(4, 3, 2, 2, 4, 3, 2), "inter_fanout"),
        (lambda: NCP(4, 3, 2, 2, 2, 10, 2), "recurrent_command_synapses"),
        (lambda: NCP(4, 3, 2, 2, 2, 3, 4), "motor_fanin"),
        (lambda: FullyConnected(4, output_dim=5), "output_dim"),
        (lambda: Random(4, sparsity_level=1.0), "sparsity_level"),
        (lambda: FullyConnected(0), "units"),
    ],
)
def test_invalid_wiring_arguments_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_one_wiring_in_two_layers_with_other_input_size_raises_at_construction():
    for wiring in (FullyConnected(25, 6), AutoNCP(25, 6)):
        first = torchlnn.CfC(30, wiring)
        assert first.wiring.input_dim == 30
        with pytest.raises(ValueError) as error:
            torchlnn.CfC(6, wiring)
        assert "already built for 30 input features" in str(error.value)
        assert "its own instance" in str(error.value)


def test_stacked_layers_with_their_own_wirings_run():
    import torch

    for make in (lambda: FullyConnected(25, 6), lambda: AutoNCP(25, 6)):
        first, second = torchlnn.CfC(30, make()), torchlnn.CfC(6, make())
        hidden, _ = first(torch.randn(2, 4, 30))
        output, _ = second(hidden)
        assert output.shape == (2, 4, 6)
        assert first.wiring.input_dim == 30 and second.wiring.input_dim == 6


def test_add_synapse_validates_indices_and_polarity():
    wiring = Wiring(3)
    with pytest.raises(ValueError, match="polarity"):
        wiring.add_synapse(0, 1, 2)
    with pytest.raises(ValueError, match="dest"):
        wiring.add_synapse(0, 3, 1)
    with pytest.raises(ValueError, match="build"):
        wiring.add_sensory_synapse(0, 1, 1)


def test_from_matrices_validates_entries():
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        Wiring.from_matrices(np.full((2, 2), 3))
    with pytest.raises(ValueError, match="every neuron"):
        Wiring.from_matrices(np.zeros((3, 3)), layers=[[0, 1]])
