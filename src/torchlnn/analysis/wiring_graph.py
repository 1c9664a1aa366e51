"""The graph of a wiring, with learned weights and a layout by layer, ready to draw.

Shape letters: N neurons, I input features (sensory neurons), E synapses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from torchlnn.cells import LTCCell, WiredCfCCell
from torchlnn.layers._sequence import LiquidSequence
from torchlnn.wirings import Wiring

from ._recording import find_recurrent_layer

# Neuron types drawn last (rightmost) when a one-layer wiring is split into columns by type.
_OUTPUT_TYPE = "motor"
# Largest vertical distance between neighbours in a column, as a fraction of the height.
_MAX_SPACING = 0.12


@dataclass
class WiringGraph:
    """Neurons, synapses and a layered layout of a wiring.

    Columns run from the input (left) to the output (right): the sensory neurons (one per
    input feature) first, then each layer of the wiring (``wiring.layers()``). A wiring with
    one layer is split into columns by neuron type instead, motor neurons last.

    Attributes:
        neuron_types: the role of each of the N neurons.
        columns: the neuron ids of each column after the sensory one, left to right.
        column_names: the neuron types found in each column, joined by "/".
        sensory_count: I, the number of sensory neurons drawn (0 when left out or unknown).
        sensory_positions: (I, 2) x, y of each sensory neuron.
        neuron_positions: (N, 2) x, y of each neuron. Columns are 1 apart in x; y lies in
            [-0.5, 0.5], with each column centred on 0.
        sources, targets: (E,) ids of each synapse's source and target neuron; a source is an
            input index where ``from_sensory`` is True.
        from_sensory: (E,) bool, True for a synapse from an input feature.
        polarity: (E,) +1 (excitatory) or -1 (inhibitory). For an LTC this is the sign of the
            learned reversal potential ``erev`` (``sensory_erev``). It starts at the wiring's
            polarity and may change sign in training. Other models show the wiring's polarity.
        weight: (E,) the learned strength of each synapse, NaN when not known: for an LTC the
            maximum conductance ``w`` (``sensory_w``); for a wired CfC the Euclidean norm,
            over its heads, of the masked weights that read the source.
        weight_name: what ``weight`` holds, for legends ("" when there are no weights).
    """

    neuron_types: list[str]
    columns: list[list[int]]
    column_names: list[str]
    sensory_count: int
    sensory_positions: np.ndarray
    neuron_positions: np.ndarray
    sources: np.ndarray
    targets: np.ndarray
    from_sensory: np.ndarray
    polarity: np.ndarray
    weight: np.ndarray
    weight_name: str


def _resolve(model: nn.Module | Wiring) -> tuple[Wiring, nn.Module | None]:
    """Return the wiring and the cell that stores its learned weights (None for a bare wiring)."""
    if isinstance(model, Wiring):
        return model, None
    if isinstance(model, (LTCCell, WiredCfCCell)):
        return model.wiring, model
    if isinstance(model, nn.Module):
        layer = find_recurrent_layer(model)
        if isinstance(layer, LiquidSequence) and layer.wiring is not None:
            cell = layer.rnn_cell
            return layer.wiring, cell if isinstance(cell, (LTCCell, WiredCfCCell)) else None
        raise TypeError(
            f"the recurrent layer ({type(layer).__name__}) has no wiring to draw: only "
            f"torchlnn.LTC and a torchlnn.CfC built with a Wiring have one. A dense CfC "
            f"connects every neuron to every other."
        )
    raise TypeError(
        f"expected a torchlnn wiring, a liquid layer or cell, or a module containing one; got "
        f"{type(model).__name__}."
    )


def _columns(wiring: Wiring) -> list[list[int]]:
    layers = [list(layer) for layer in wiring.layers()]
    if len(layers) > 1:
        return layers
    types = wiring.neuron_types()
    order = list(dict.fromkeys(types))
    if _OUTPUT_TYPE in order and len(order) > 1:
        order.remove(_OUTPUT_TYPE)
        order.append(_OUTPUT_TYPE)
    return [[i for i in layers[0] if types[i] == name] for name in order]


def _ltc_edges(cell: LTCCell, sources, targets, from_sensory):
    with torch.no_grad():
        w, erev = cell.w.cpu().double().numpy(), cell.erev.cpu().double().numpy()
        sensory_w = cell.sensory_w.cpu().double().numpy()
        sensory_erev = cell.sensory_erev.cpu().double().numpy()
    # Sources index the inputs or the neurons depending on the kind, so fill each kind apart.
    weight = np.empty(len(sources))
    reversal = np.empty(len(sources))
    weight[from_sensory] = sensory_w[sources[from_sensory], targets[from_sensory]]
    reversal[from_sensory] = sensory_erev[sources[from_sensory], targets[from_sensory]]
    internal = ~from_sensory
    weight[internal] = w[sources[internal], targets[internal]]
    reversal[internal] = erev[sources[internal], targets[internal]]
    return weight, np.sign(reversal)


def _cfc_edges(cell: WiredCfCCell, sources, targets, from_sensory):
    """Return the norm over heads of the masked weight that reads each synapse's source."""
    weight = np.full(len(sources), np.nan)
    located = {}
    previous_ids: list[int] = []
    with torch.no_grad():
        for layer in cell.layers:
            ids = layer.neuron_ids.tolist()
            masked = layer.masked_weight().cpu().double().numpy()  # (heads * H_l, U_l)
            heads = masked.shape[0] // layer.size
            n_x, n_fresh, _ = layer.splits
            x_sources = layer.x_sources.tolist()
            fresh = [previous_ids[p] for p in layer.fresh_sources.tolist()]
            state_sources = layer.state_sources.tolist()
            for row, neuron in enumerate(ids):
                rows = [row + head * layer.size for head in range(heads)]
                located[neuron] = (masked[rows], x_sources, fresh, state_sources, n_x, n_fresh)
            previous_ids = ids

    for e, (src, dst, sensory) in enumerate(zip(sources, targets, from_sensory)):
        block, x_sources, fresh, state_sources, n_x, n_fresh = located[int(dst)]
        if sensory:
            column = x_sources.index(src) if src in x_sources else None
        elif src in fresh:
            column = n_x + fresh.index(src)
        elif src in state_sources:
            column = n_x + n_fresh + state_sources.index(src)
        else:  # the "ncps" connectivity drops some synapses of the wiring
            column = None
        if column is not None:
            weight[e] = float(np.linalg.norm(block[:, column]))
    return weight


def _layout(
    columns: list[list[int]],
    units: int,
    sensory_count: int,
    sources: np.ndarray,
    targets: np.ndarray,
    from_sensory: np.ndarray,
    order: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Place the columns 1 apart and order each column to reduce crossings.

    With ``order="barycenter"`` each column, left to right, is sorted by the mean height of
    each neuron's sources in the columns already placed (the barycenter heuristic of layered
    graph drawing). Neurons without such sources keep their index order. ``order="index"``
    keeps index order everywhere.
    """
    tallest = max([sensory_count] + [len(column) for column in columns])
    base = 1.0 / max(tallest - 1, 1)

    def heights(count: int) -> np.ndarray:
        # Short columns get up to _MAX_SPACING between neurons instead of the tallest
        # column's spacing, so that they do not shrink to a point beside 32 sensory neurons.
        spacing = max(base, min(1.0 / max(count - 1, 1), _MAX_SPACING))
        return ((count - 1) / 2.0 - np.arange(count)) * spacing  # top to bottom

    sensory_positions = np.zeros((sensory_count, 2))
    sensory_positions[:, 1] = heights(sensory_count)
    neuron_positions = np.full((units, 2), np.nan)
    offset = 1 if sensory_count else 0
    placed_sensory = sensory_count > 0

    for index, column in enumerate(columns):
        slots = heights(len(column))
        keys = []
        for rank, neuron in enumerate(column):
            into = targets == neuron
            ys = []
            if placed_sensory:
                ys += list(sensory_positions[sources[into & from_sensory], 1])
            internal = sources[into & ~from_sensory]
            ys += [neuron_positions[j, 1] for j in internal if not np.isnan(neuron_positions[j, 1])]
            keys.append(np.mean(ys) if (ys and order == "barycenter") else slots[rank])
        ranking = np.argsort(-np.asarray(keys), kind="stable")
        for slot, position in enumerate(ranking):
            neuron_positions[column[position]] = (index + offset, slots[slot])
    return sensory_positions, neuron_positions


def wiring_graph(
    model: nn.Module | Wiring,
    *,
    include_sensory: bool = True,
    weights: bool = True,
    order: str = "barycenter",
) -> WiringGraph:
    """Build the graph of a wiring, with learned polarities and weights when a model is given.

    Args:
        model: a ``torchlnn.wirings.Wiring`` (any subclass), a ``torchlnn.LTC`` or wired
            ``torchlnn.CfC`` layer or cell, or a module that contains one such layer.
        include_sensory: add a column of sensory neurons, one per input feature, with their
            synapses (needs a built wiring).
        weights: read the learned synapse weights of a model (an LTC or a wired CfC).
        order: "barycenter" (order each column to reduce crossings) or "index".

    Returns:
        A ``WiringGraph``.
    """
    if order not in ("barycenter", "index"):
        raise ValueError(f"order must be 'barycenter' or 'index', got {order!r}.")
    wiring, cell = _resolve(model)
    units = wiring.units
    include_sensory = include_sensory and wiring.sensory_adjacency_matrix is not None
    sensory_count = wiring.input_dim if include_sensory else 0

    internal = np.argwhere(wiring.adjacency_matrix != 0)  # (E_n, 2) [src, dst]
    parts_src, parts_dst = [internal[:, 0]], [internal[:, 1]]
    parts_kind = [np.zeros(len(internal), bool)]
    if include_sensory:
        sensory = np.argwhere(wiring.sensory_adjacency_matrix != 0)  # (E_s, 2)
        parts_src.append(sensory[:, 0])
        parts_dst.append(sensory[:, 1])
        parts_kind.append(np.ones(len(sensory), bool))
    sources = np.concatenate(parts_src).astype(np.int64)
    targets = np.concatenate(parts_dst).astype(np.int64)
    from_sensory = np.concatenate(parts_kind)

    polarity = np.empty(len(sources), dtype=np.int64)
    internal_synapse = ~from_sensory
    polarity[internal_synapse] = wiring.adjacency_matrix[
        sources[internal_synapse], targets[internal_synapse]
    ]
    if include_sensory:
        matrix = wiring.sensory_adjacency_matrix
        polarity[from_sensory] = matrix[sources[from_sensory], targets[from_sensory]]

    weight = np.full(len(sources), np.nan)
    weight_name = ""
    if isinstance(cell, LTCCell):
        ltc_weight, learned_sign = _ltc_edges(cell, sources, targets, from_sensory)
        polarity = np.where(learned_sign != 0, learned_sign, polarity).astype(np.int64)
        if weights:
            weight, weight_name = ltc_weight, "maximum conductance w"
    elif isinstance(cell, WiredCfCCell) and weights:
        weight = _cfc_edges(cell, sources, targets, from_sensory)
        weight_name = "norm of the masked head weights"

    columns = _columns(wiring)
    types = wiring.neuron_types()
    names = ["/".join(dict.fromkeys(types[i] for i in column)) for column in columns]
    sensory_positions, neuron_positions = _layout(
        columns, units, sensory_count, sources, targets, from_sensory, order
    )
    return WiringGraph(
        neuron_types=types,
        columns=columns,
        column_names=names,
        sensory_count=sensory_count,
        sensory_positions=sensory_positions,
        neuron_positions=neuron_positions,
        sources=sources,
        targets=targets,
        from_sensory=from_sensory,
        polarity=polarity,
        weight=weight,
        weight_name=weight_name,
    )
