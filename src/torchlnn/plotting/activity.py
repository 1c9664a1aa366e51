"""Draw neuron activity, its principal components, time constants and sensitivities."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from torchlnn.analysis.activity import Activity, PCAResult, to_numpy
from torchlnn.analysis.sensitivity import LipschitzBound, LipschitzEstimate

from ._figure import finish, new_figure, type_colors


def _check_sample(sample: int, batch: int) -> int:
    if not -batch <= sample < batch:
        raise ValueError(f"sample must be in [0, {batch - 1}] for {batch} samples, got {sample}.")
    return sample % batch


def _real_steps(mask: np.ndarray | None, sample: int, steps: int) -> int:
    """Return the number of real steps of ``sample`` (padding is at the end)."""
    if mask is None:
        return steps
    return int(np.asarray(mask)[sample].sum())


def plot_activity(
    activity: Activity,
    *,
    sample: int = 0,
    targets: np.ndarray | None = None,
    time: np.ndarray | None = None,
    output_names: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
):
    """Draw every neuron's trace, grouped by neuron type, below the model's output.

    The top panel shows the model's outputs, and ``targets`` dashed when given (such as the
    steering a driver gave). Below it come one panel per neuron type, in the order the types
    first appear in the state (motor, command, inter for an NCP), with one line per neuron.

    Args:
        activity: from ``torchlnn.analysis.record_activity``.
        sample: the sample of the batch to draw.
        targets: (B, T) or (B, T, O) reference values for the output panel.
        time: (T,) time of each step for the x axis (default the step index).
        output_names: a name for each output, for the legend.
        path: save the figure there when given.
    """
    batch, steps, _ = activity.states.shape
    sample = _check_sample(sample, batch)
    length = _real_steps(activity.mask, sample, steps)
    x_axis = np.arange(length) if time is None else to_numpy(time)[:length]
    types = activity.neuron_types
    groups = list(dict.fromkeys(types))
    colors = type_colors(types)

    figure, axes = new_figure(8.0, 1.6 + 1.55 * (len(groups) + 1), rows=len(groups) + 1,
                              sharex=True)
    output_ax = axes[0, 0]
    outputs = activity.outputs
    if outputs.shape == activity.states.shape[:2]:
        outputs = outputs[..., None]  # one output per step: (B, T) -> (B, T, 1)
    outputs = outputs[sample]
    if outputs.ndim == 2:  # (T, O): one line per output
        for o in range(outputs.shape[1]):
            name = output_names[o] if output_names else f"output {o}"
            output_ax.plot(x_axis, outputs[:length, o], linewidth=1.6, label=name)
    else:  # (O,): only the final output
        for o, value in enumerate(np.atleast_1d(outputs)):
            name = output_names[o] if output_names else f"final output {o}"
            output_ax.plot([x_axis[-1]], [value], "o", label=name)
    if targets is not None:
        reference = to_numpy(targets)[sample]
        reference = reference[:, None] if reference.ndim == 1 else reference
        for o in range(reference.shape[1]):
            output_ax.plot(x_axis, reference[:length, o], "--", color="black", linewidth=1.2,
                           label="target" if o == 0 else None)
    output_ax.set_ylabel("output")
    output_ax.legend(loc="upper right", fontsize=7, ncol=2)
    output_ax.set_title(f"{activity.layer_name}: neuron states, sample {sample}", fontsize=10)

    for row, name in enumerate(groups, start=1):
        ax = axes[row, 0]
        ids = [i for i, kind in enumerate(types) if kind == name]
        shades = np.linspace(1.0, 0.45, len(ids))
        for shade, i in zip(shades, ids):
            ax.plot(x_axis, activity.states[sample, :length, i], linewidth=1.0,
                    color=colors[name], alpha=float(shade), label=f"{i}")
        ax.set_ylabel(f"{name}\n({len(ids)})")
        if len(ids) <= 12:
            ax.legend(loc="upper right", fontsize=6, ncol=min(len(ids), 6), title="neuron",
                      title_fontsize=6)
    axes[-1, 0].set_xlabel("step" if time is None else "time")
    return finish(figure, path)


def plot_pca(
    pca: PCAResult,
    *,
    sample: int = 0,
    components: int = 10,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Draw the variance explained by each principal component and the PC1-PC2 trajectory.

    Args:
        pca: from ``torchlnn.analysis.activity_pca``.
        sample: the sample whose trajectory is drawn (projections of shape (B, T, K)).
        components: the number of components in the bar chart.
        title: the figure title.
        path: save the figure there when given.
    """
    ratio = pca.explained_variance_ratio[:components]
    component_numbers = np.arange(1, len(ratio) + 1)
    has_trajectory = pca.projections.shape[-1] >= 2
    figure, axes = new_figure(9.0 if has_trajectory else 4.8, 3.6, columns=2 if has_trajectory
                              else 1)
    ax = axes[0, 0]
    bars = ax.bar(component_numbers, 100 * ratio, color="#6baed6", edgecolor="#2171b5")
    ax.plot(component_numbers, 100 * np.cumsum(ratio), "o-", color="#08306b", markersize=3,
            label="cumulative")
    ax.bar_label(bars, labels=[f"{100 * r:.0f}%" for r in ratio], fontsize=7)
    ax.set_xlabel("principal component")
    ax.set_ylabel("variance explained (%)")
    ax.set_ylim(0, 105)
    ax.set_xticks(component_numbers)
    ax.legend(loc="center right", fontsize=8)

    if has_trajectory:
        ax = axes[0, 1]
        projections = pca.projections
        if projections.ndim == 3:
            sample = _check_sample(sample, projections.shape[0])
            projections = projections[sample]
        projections = projections[~np.isnan(projections).any(axis=1)]
        points = ax.scatter(projections[:, 0], projections[:, 1], c=np.arange(len(projections)),
                            cmap="viridis", s=10)
        ax.plot(projections[:, 0], projections[:, 1], color="#bdbdbd", linewidth=0.7, zorder=0)
        figure.colorbar(points, ax=ax, label="step")
        ax.set_xlabel(f"PC1 ({100 * pca.explained_variance_ratio[0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({100 * pca.explained_variance_ratio[1]:.0f}%)")
    if title:
        figure.suptitle(title, fontsize=10)
    return finish(figure, path)


def plot_pca_comparison(
    results: Mapping[str, PCAResult],
    *,
    components: int = 5,
    path: str | os.PathLike | None = None,
):
    """Compare models by the variance their first principal components explain (grouped bars).

    Args:
        results: a ``PCAResult`` per model name, e.g. ``{"NCP (LTC)": ..., "LSTM": ...}``.
        components: the number of components per model.
        path: save the figure there when given.
    """
    if not results:
        raise ValueError("results is empty: pass at least one model's PCAResult.")
    figure, axes = new_figure(1.2 + 1.1 * components + 0.4 * len(results), 3.6)
    ax = axes[0, 0]
    width = 0.8 / len(results)
    for index, (name, pca) in enumerate(results.items()):
        ratio = pca.explained_variance_ratio[:components]
        positions = np.arange(1, len(ratio) + 1) + (index - (len(results) - 1) / 2) * width
        bars = ax.bar(positions, 100 * ratio, width=width, label=name)
        ax.bar_label(bars, labels=[f"{100 * r:.0f}" for r in ratio], fontsize=6)
    ax.set_xticks(np.arange(1, components + 1))
    ax.set_xlabel("principal component")
    ax.set_ylabel("variance explained (%)")
    ax.legend(fontsize=8)
    return finish(figure, path)


def plot_correlation(
    correlation: np.ndarray,
    neuron_types: Sequence[str],
    *,
    output_index: int = 0,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Draw each neuron's correlation with one output as bars coloured by neuron type.

    Args:
        correlation: (N, O) from ``torchlnn.analysis.neuron_output_correlation``.
        neuron_types: the role of each neuron.
        output_index: the output whose correlations are drawn.
        title: the axes title.
        path: save the figure there when given. A NaN correlation (a constant neuron) is drawn
            as an empty hatched bar.
    """
    values = np.asarray(correlation)[:, output_index]
    if len(values) != len(neuron_types):
        raise ValueError(
            f"correlation has {len(values)} neurons but neuron_types names {len(neuron_types)}."
        )
    colors = type_colors(list(neuron_types))
    figure, axes = new_figure(max(4.0, 0.32 * len(values) + 1.5), 3.2)
    ax = axes[0, 0]
    constant = np.isnan(values)
    heights = np.where(constant, 0.0, values)
    bars = ax.bar(np.arange(len(values)), heights,
                  color=[colors[name] for name in neuron_types], edgecolor="#252525",
                  linewidth=0.5)
    for bar, missing in zip(bars, constant):
        if missing:
            bar.set_hatch("//")
            bar.set_height(0.05)
    for name, color in colors.items():
        ax.bar([0], [0], color=color, label=name)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xticks(np.arange(len(values)))
    ax.tick_params(axis="x", labelsize=6)
    ax.set_xlabel("neuron")
    ax.set_ylabel("Pearson correlation")
    ax.legend(fontsize=7, ncol=len(colors))
    ax.set_title(title or f"correlation of each neuron with output {output_index}", fontsize=10)
    return finish(figure, path)


def plot_time_constants(
    tau: np.ndarray,
    neuron_types: Sequence[str],
    *,
    sample: int = 0,
    time: np.ndarray | None = None,
    log: bool = True,
    path: str | os.PathLike | None = None,
):
    """Draw each LTC neuron's system time constant over a sequence, coloured by neuron type.

    Args:
        tau: (B, T, N) from ``torchlnn.analysis.time_constants``.
        neuron_types: the role of each neuron.
        sample: the sample to draw.
        time: (T,) time of each step for the x axis.
        log: use a logarithmic y axis.
        path: save the figure there when given.
    """
    tau = np.asarray(tau)
    if tau.ndim != 3 or tau.shape[-1] != len(neuron_types):
        raise ValueError(
            f"tau must have shape (B, T, {len(neuron_types)}), got {tau.shape}."
        )
    sample = _check_sample(sample, tau.shape[0])
    series = tau[sample]
    real = ~np.isnan(series).any(axis=1)
    series = series[real]
    x_axis = np.arange(tau.shape[1])[real] if time is None else to_numpy(time)[real]
    colors = type_colors(list(neuron_types))
    figure, axes = new_figure(8.0, 3.6)
    ax = axes[0, 0]
    labelled = set()
    for i, name in enumerate(neuron_types):
        ax.plot(x_axis, series[:, i], color=colors[name], linewidth=1.0,
                label=name if name not in labelled else None)
        labelled.add(name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step" if time is None else "time")
    ax.set_ylabel(r"$\tau_{sys} = C_m / (g_{leak} + \sum g)$")
    ax.legend(fontsize=8)
    ax.set_title(f"system time constant of each neuron, sample {sample}", fontsize=10)
    return finish(figure, path)


def plot_lipschitz(
    neuron_types: Sequence[str],
    *,
    estimate: LipschitzEstimate | None = None,
    bound: LipschitzBound | None = None,
    path: str | os.PathLike | None = None,
):
    """Draw each neuron's measured one-step Lipschitz constants and the analytical bounds.

    Bars are the measured values (``lipschitz_estimate``) and black ticks the upper bounds of one
    fused-solver step (``ltc_lipschitz_bound``), on a logarithmic axis. The left panel is for the
    input, the right one for the previous state.

    Args:
        neuron_types: the role of each neuron.
        estimate: the measured constants.
        bound: the analytical bounds of an LTC.
        path: save the figure there when given.
    """
    if estimate is None and bound is None:
        raise ValueError("pass estimate=..., bound=... or both.")
    colors = type_colors(list(neuron_types))
    units = len(neuron_types)
    figure, axes = new_figure(max(6.0, 0.5 * units + 2.0), 3.4, columns=2)
    panels = (
        ("input", "input", "step_input"),
        ("previous state", "state", "step_state"),
    )
    for ax, (label, measured_name, bound_name) in zip(axes[0], panels):
        positions = np.arange(units)
        if estimate is not None:
            values = getattr(estimate, measured_name)
            ax.bar(positions, values, color=[colors[name] for name in neuron_types],
                   edgecolor="#252525", linewidth=0.5, label="measured (max over steps)")
        if bound is not None and getattr(bound, bound_name) is not None:
            ax.scatter(positions, getattr(bound, bound_name), marker="_", s=120, color="black",
                       linewidths=2, label="upper bound", zorder=3)
        ax.set_yscale("log")
        ax.set_xticks(positions)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_xlabel("neuron")
        ax.set_ylabel(f"|d h_i / d {measured_name}| per step")
        ax.set_title(f"sensitivity to the {label}", fontsize=10)
        ax.legend(fontsize=7)
    return finish(figure, path)


def plot_input_sensitivity(
    sensitivity: np.ndarray,
    *,
    sample: int = 0,
    feature_names: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
):
    """Draw the input-gradient magnitude of one sample as a heat map, features by steps.

    Args:
        sensitivity: (B, T, F) from ``torchlnn.analysis.input_sensitivity``.
        sample: the sample to draw.
        feature_names: a name for each feature.
        path: save the figure there when given.
    """
    values = np.abs(np.asarray(sensitivity))
    if values.ndim != 3:
        raise ValueError(f"sensitivity must have shape (B, T, F), got {values.shape}.")
    sample = _check_sample(sample, values.shape[0])
    grid = values[sample].T  # (T, F) -> (F, T)
    figure, axes = new_figure(8.0, 1.4 + 0.22 * grid.shape[0])
    ax = axes[0, 0]
    image = ax.imshow(grid, aspect="auto", cmap="magma", interpolation="nearest")
    figure.colorbar(image, ax=ax, label="|d output / d input|")
    ax.set_xlabel("step")
    ax.set_ylabel("input feature")
    if feature_names is not None:
        ax.set_yticks(np.arange(len(feature_names)), labels=list(feature_names), fontsize=6)
    ax.set_title(f"input sensitivity of the output, sample {sample}", fontsize=10)
    return finish(figure, path)
