"""Draw a wiring: neurons by layer, excitatory and inhibitory synapses, learned weights."""

from __future__ import annotations

import os

import numpy as np

from torchlnn.analysis.wiring_graph import WiringGraph, wiring_graph

from ._figure import (
    EXCITATORY_COLOR,
    INHIBITORY_COLOR,
    TYPE_COLORS,
    finish,
    new_figure,
    type_colors,
)

_NODE_SIZE = 260.0  # marker area in points^2
_MIN_WIDTH, _MAX_WIDTH, _PLAIN_WIDTH = 0.3, 3.2, 0.9


def plot_wiring(
    model,
    *,
    weights: bool = True,
    include_sensory: bool = True,
    labels: bool = True,
    order: str = "barycenter",
    title: str | None = None,
    ax=None,
    path: str | os.PathLike | None = None,
):
    """Draw a wiring diagram: neurons in columns by layer, synapses coloured by polarity.

    Columns run from the sensory neurons (one per input feature, left) through each layer of
    the wiring to the motor neurons (right). ``torchlnn.analysis.wiring_graph`` describes the
    layout and how polarity and weight are read from a trained model. Excitatory synapses
    are green solid arrows, inhibitory ones red dashed lines with a bar head. With learned
    weights, line width grows with the weight (one scale for all synapses). A ring around a
    neuron marks a synapse onto itself. A wired CfC's heads do not use polarity, so for a CfC
    the colours show the wiring's polarities only.

    Args:
        model: a wiring, a ``torchlnn.LTC`` or wired ``torchlnn.CfC`` (layer or cell), a module
            containing one, or a ``WiringGraph``.
        weights: scale line widths by the learned weights (when the model has them).
        include_sensory: draw the sensory neurons and their synapses.
        labels: write each neuron's index in its node.
        order: "barycenter" or "index", the order of the neurons within each column.
        title: the axes title (default: a summary of neurons and synapses).
        ax: draw into these axes instead of a new figure.
        path: save the figure there (format from the suffix) when given.

    Returns:
        The matplotlib ``Figure``. Synapse arrows carry the gid "synapse:excitatory" or
        "synapse:inhibitory", neuron markers "neurons:<type>".
    """
    graph = (
        model
        if isinstance(model, WiringGraph)
        else wiring_graph(model, include_sensory=include_sensory, weights=weights, order=order)
    )
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    columns = len(graph.columns) + (1 if graph.sensory_count else 0)
    tallest = max([graph.sensory_count] + [len(column) for column in graph.columns])
    if ax is None:
        figure, axes = new_figure(1.9 * columns + 2.4, max(3.2, 0.24 * tallest + 1.6))
        ax = axes[0, 0]
    figure = ax.figure

    # Line widths: one scale for every synapse, from the largest learned weight.
    finite = np.isfinite(graph.weight)
    widths = np.full(len(graph.weight), _PLAIN_WIDTH)
    if weights and finite.any() and np.nanmax(graph.weight) > 0:
        scaled = graph.weight / np.nanmax(graph.weight)
        widths = np.where(finite, _MIN_WIDTH + (_MAX_WIDTH - _MIN_WIDTH) * scaled, _PLAIN_WIDTH)

    shrink = np.sqrt(_NODE_SIZE) / 2 + 1.5  # points between a node's centre and an arrow's end
    self_loops = {1: [], -1: []}
    for e in range(len(graph.sources)):
        src, dst = int(graph.sources[e]), int(graph.targets[e])
        start = (
            graph.sensory_positions[src] if graph.from_sensory[e] else graph.neuron_positions[src]
        )
        end = graph.neuron_positions[dst]
        excitatory = graph.polarity[e] > 0
        if not graph.from_sensory[e] and src == dst:
            self_loops[1 if excitatory else -1].append(end)
            continue
        same_column = np.isclose(start[0], end[0])
        backward = start[0] > end[0]
        bend = 0.0
        if same_column:
            bend = 0.45
        elif backward:
            bend = 0.25
        arrow = FancyArrowPatch(
            tuple(start),
            tuple(end),
            arrowstyle="-|>" if excitatory else "-[",
            connectionstyle=f"arc3,rad={bend}",
            mutation_scale=9,
            shrinkA=shrink,
            shrinkB=shrink,
            linewidth=widths[e],
            linestyle="-" if excitatory else (0, (3, 1.5)),
            color=EXCITATORY_COLOR if excitatory else INHIBITORY_COLOR,
            alpha=0.45 if graph.from_sensory[e] else 0.85,
            zorder=1,
        )
        arrow.set_gid("synapse:excitatory" if excitatory else "synapse:inhibitory")
        ax.add_patch(arrow)

    # Neurons, one marker collection per type.
    colors = type_colors(graph.neuron_types)
    if graph.sensory_count:
        points = graph.sensory_positions
        collection = ax.scatter(
            points[:, 0], points[:, 1], s=_NODE_SIZE * 0.7, color=TYPE_COLORS["sensory"],
            edgecolors="#525252", linewidths=0.8, zorder=3, label="sensory",
        )
        collection.set_gid("neurons:sensory")
    types = np.asarray(graph.neuron_types)
    for name, color in colors.items():
        ids = np.flatnonzero(types == name)
        points = graph.neuron_positions[ids]
        collection = ax.scatter(
            points[:, 0], points[:, 1], s=_NODE_SIZE, color=color, edgecolors="#252525",
            linewidths=0.9, zorder=3, label=name,
        )
        collection.set_gid(f"neurons:{name}")
    for polarity, points in self_loops.items():
        if points:
            points = np.asarray(points)
            ring = ax.scatter(
                points[:, 0], points[:, 1], s=_NODE_SIZE * 2.2, facecolors="none",
                edgecolors=EXCITATORY_COLOR if polarity > 0 else INHIBITORY_COLOR,
                linewidths=1.4, linestyle="-" if polarity > 0 else "--", zorder=2,
            )
            ring.set_gid("self-synapses:" + ("excitatory" if polarity > 0 else "inhibitory"))

    if labels:
        for i, (x, y) in enumerate(graph.neuron_positions):
            ax.text(x, y, str(i), ha="center", va="center", fontsize=6.5, zorder=4)

    # Column names above the columns.
    top = 0.5 + 0.6 / max(tallest - 1, 1) + 0.04
    if graph.sensory_count:
        ax.text(0, top, f"sensory ({graph.sensory_count})", ha="center", va="bottom", fontsize=9)
    offset = 1 if graph.sensory_count else 0
    for index, (name, column) in enumerate(zip(graph.column_names, graph.columns)):
        ax.text(index + offset, top, f"{name} ({len(column)})", ha="center", va="bottom",
                fontsize=9)

    handles = [
        Line2D([], [], color=EXCITATORY_COLOR, linewidth=1.6, label="excitatory"),
        Line2D([], [], color=INHIBITORY_COLOR, linewidth=1.6, linestyle="--",
               label="inhibitory"),
    ]
    ax.legend(
        handles=ax.get_legend_handles_labels()[0] + handles, loc="upper left",
        bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
    )
    internal = int((~graph.from_sensory).sum())
    summary = f"{len(graph.neuron_types)} neurons, {internal} synapses"
    if graph.sensory_count:
        summary += f", {int(graph.from_sensory.sum())} sensory synapses"
    if weights and graph.weight_name:
        summary += f"; width = {graph.weight_name}"
    ax.set_title(title if title is not None else summary, fontsize=10)
    ax.set_xlim(-0.5, columns - 0.5)
    ax.set_ylim(-0.5 - 0.6 / max(tallest - 1, 1), top + 0.08)
    ax.set_axis_off()
    return finish(figure, path)
