"""The wiring graph: layers as columns, synapses with learned polarity and weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.analysis import wiring_graph
from torchlnn.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring

from .models import RelayWiring, small_ncp


def built(wiring, inputs=4):
    wiring.build(inputs)
    return wiring


WIRINGS = {
    "ncp": lambda: built(small_ncp()),
    "autoncp": lambda: built(AutoNCP(12, 2, seed=1)),
    "fully-connected": lambda: built(FullyConnected(6, output_dim=2)),
    "random": lambda: built(Random(7, output_dim=3, sparsity_level=0.5, seed=4)),
    "relay-subclass": lambda: built(RelayWiring()),
    "from-matrices": lambda: Wiring.from_matrices(
        [[0, 0, 0], [1, 0, 0], [0, -1, 1]], [[0, 1, 1], [0, 0, -1]], output_dim=1,
        neuron_types=["motor", "hidden-a", "hidden-b"], layers=[[2], [1], [0]],
    ),
}


@pytest.mark.parametrize("name", sorted(WIRINGS))
def test_graph_of_every_wiring(name):
    wiring = WIRINGS[name]()
    graph = wiring_graph(wiring)

    assert len(graph.sources) == wiring.synapse_count + wiring.sensory_synapse_count
    assert graph.sensory_count == wiring.input_dim
    placed = sorted(i for column in graph.columns for i in column)
    assert placed == list(range(wiring.units))
    assert np.isfinite(graph.neuron_positions).all()
    assert (np.abs(graph.neuron_positions[:, 1]) <= 0.5 + 1e-12).all()
    assert set(np.unique(graph.polarity)) <= {-1, 1}
    assert np.isnan(graph.weight).all()  # a bare wiring has no learned weights

    internal = ~graph.from_sensory
    expected = wiring.adjacency_matrix[graph.sources[internal], graph.targets[internal]]
    np.testing.assert_array_equal(graph.polarity[internal], expected)
    for column_index, column in enumerate(graph.columns, start=1):
        assert (graph.neuron_positions[column, 0] == column_index).all()
        ys = graph.neuron_positions[column, 1]
        assert len(set(np.round(ys, 9))) == len(column)  # no two neurons on one spot


def test_layers_become_columns():
    graph = wiring_graph(built(small_ncp()))
    assert graph.column_names == ["inter", "command", "motor"]
    relay = wiring_graph(built(RelayWiring()))
    assert relay.column_names == ["relay", "inter", "command", "motor"]
    assert relay.columns == [[6, 7], [3, 4, 5], [1, 2], [0]]
    custom = wiring_graph(WIRINGS["from-matrices"]())
    assert custom.column_names == ["hidden-b", "hidden-a", "motor"]


def test_one_layer_wiring_splits_by_type():
    graph = wiring_graph(built(FullyConnected(6, output_dim=2)))
    assert graph.column_names == ["inter", "motor"]
    assert graph.columns == [[2, 3, 4, 5], [0, 1]]


def crossings(graph, left, right):
    """Count crossing pairs of synapses from column ``left`` to column ``right``."""
    ids_left, ids_right = set(graph.columns[left]), set(graph.columns[right])
    edges = [
        (graph.neuron_positions[s, 1], graph.neuron_positions[t, 1])
        for s, t, sensory in zip(graph.sources, graph.targets, graph.from_sensory)
        if not sensory and s in ids_left and t in ids_right
    ]
    return sum(
        (a[0] - b[0]) * (a[1] - b[1]) < 0 for i, a in enumerate(edges) for b in edges[i + 1 :]
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_barycenter_order_reduces_crossings(seed):
    wiring = built(NCP(12, 6, 1, 6, 4, 6, 6, seed=seed), 32)
    ordered = wiring_graph(wiring, include_sensory=False)
    plain = wiring_graph(wiring, include_sensory=False, order="index")
    assert crossings(ordered, 0, 1) <= crossings(plain, 0, 1)
    assert crossings(ordered, 1, 2) <= crossings(plain, 1, 2)
    assert ordered.sensory_count == 0
    assert not ordered.from_sensory.any()


def test_ltc_polarity_and_weights_are_learned_values():
    layer = torchlnn.LTC(4, small_ncp())
    cell = layer.rnn_cell
    src, dst = np.argwhere(layer.wiring.adjacency_matrix != 0)[0]
    with torch.no_grad():
        cell.erev[src, dst] = -3.0 * torch.sign(cell.erev[src, dst])  # training flipped it
    graph = wiring_graph(layer)

    internal = ~graph.from_sensory
    w = cell.w.detach().double().numpy()
    np.testing.assert_allclose(graph.weight[internal],
                               w[graph.sources[internal], graph.targets[internal]])
    sensory_w = cell.sensory_w.detach().double().numpy()
    np.testing.assert_allclose(graph.weight[~internal],
                               sensory_w[graph.sources[~internal], graph.targets[~internal]])
    flipped = np.flatnonzero(internal & (graph.sources == src) & (graph.targets == dst))[0]
    assert graph.polarity[flipped] == -layer.wiring.adjacency_matrix[src, dst]
    assert graph.weight_name == "maximum conductance w"
    assert np.isnan(wiring_graph(layer, weights=False).weight).all()


def test_wired_cfc_weights_read_the_masked_heads():
    layer = torchlnn.CfC(4, small_ncp())
    with torch.no_grad():
        for wired_layer in layer.rnn_cell.layers:
            wired_layer.weight.fill_(1.0)
    graph = wiring_graph(layer)
    # With every weight 1, each synapse's column is the mask: 1 in each of the 4 heads.
    np.testing.assert_allclose(graph.weight, 2.0)

    ncps_style = torchlnn.CfC(4, small_ncp(), connectivity="ncps")
    ncps_graph = wiring_graph(ncps_style)
    assert np.isfinite(ncps_graph.weight[ncps_graph.from_sensory]).all()


def test_graph_rejects_models_without_wiring():
    with pytest.raises(TypeError, match="no wiring to draw"):
        wiring_graph(torchlnn.CfC(4, 6))
    with pytest.raises(TypeError, match="no wiring to draw"):
        wiring_graph(torch.nn.GRU(4, 3))
    with pytest.raises(ValueError, match="order must be"):
        wiring_graph(built(small_ncp()), order="random")
