"""Neuron activity: record every neuron's state, its principal components, its link to the output.

Shape letters: B samples, T steps, N neurons, O outputs, K principal components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchlnn.layers._sequence import LiquidSequence

from ._recording import concatenate_calls, find_recurrent_layer, forward_arguments, record_calls


def to_numpy(value: Any) -> np.ndarray:
    """Return ``value`` (a tensor, an array or a nested list) as a float64 NumPy array."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def neuron_types_of(layer: nn.Module) -> list[str]:
    """Return the role of every neuron of a recurrent layer, in state order.

    A wired layer takes the roles from its wiring ("motor", "command", "inter" or custom
    names). A dense CfC and the ``torch.nn`` recurrent layers call every neuron "hidden".
    """
    wiring = getattr(layer, "wiring", None)
    if isinstance(layer, LiquidSequence) and wiring is not None:
        return wiring.neuron_types()
    if isinstance(layer, LiquidSequence):
        return ["hidden"] * layer.state_size
    size = layer.hidden_size if getattr(layer, "proj_size", 0) == 0 else layer.proj_size
    directions = 2 if layer.bidirectional else 1
    return ["hidden"] * (size * directions)


@dataclass
class Activity:
    """The states of a recurrent layer over a sequence, and the model's output.

    Attributes:
        states: every neuron's state after every step, (B, T, N), float64.
        outputs: the model's output as it returns it, float64: (B, T, O) for a sequence
            output, (B, O) for a final-step output. A recurrent layer called directly with
            ``batch_first=False`` or unbatched input has its output put in this layout too.
        neuron_types: the role of each of the N neurons ("motor", "command", "inter", a
            custom name, or "hidden" for a layer without a wiring).
        mask: (B, T) bool, True at real steps, or None when every step is real.
        layer_name: the class name of the recorded layer, for figure titles.
    """

    states: np.ndarray
    outputs: np.ndarray
    neuron_types: list[str]
    mask: np.ndarray | None
    layer_name: str

    def valid_states(self) -> np.ndarray:
        """Return the states of the real steps only, stacked into (S, N)."""
        return _valid_rows(self.states, self.mask)


def record_activity(
    model: nn.Module,
    inputs: Tensor,
    *,
    timespans: float | Tensor | None = None,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
    lengths: Tensor | list[int] | None = None,
    mask: Tensor | None = None,
    layer: nn.Module | None = None,
) -> Activity:
    """Run ``model`` on ``inputs`` and record every neuron's state at every step.

    ``model`` is a recurrent layer (``torchlnn.LTC``, ``torchlnn.CfC``, ``torch.nn.LSTM``,
    ``GRU``, ``RNN``) or any module that contains one, such as a convolutional head followed
    by an LTC. The states are those of that layer; its output, and the model's, are the same as
    without recording. A model that calls its layer once per step (streaming) has the calls
    joined along time. Runs under ``torch.no_grad()``; the module's train/eval mode is left as
    it is, so call ``model.eval()`` first when it has dropout.

    Args:
        model: the model to run.
        inputs: what ``model`` takes, e.g. (B, T, F) features or (B, T, 3, H, W) frames.
        timespans, hx, lengths, mask: passed on to ``model`` when given (see
            ``torchlnn.LTC.forward``). A ``torch.nn`` recurrent layer takes only ``hx``.
        layer: the recurrent layer to record, when ``model`` contains several.

    Returns:
        An ``Activity`` with states (B, T, N) and the model's outputs.
    """
    target = find_recurrent_layer(model, layer)
    if isinstance(model, nn.RNNBase):
        rejected = [
            name
            for name, value in (("timespans", timespans), ("lengths", lengths), ("mask", mask))
            if value is not None
        ]
        if rejected:
            raise ValueError(
                f"torch.nn.{type(model).__name__} takes no {', '.join(rejected)}; pack a padded "
                f"batch with torch.nn.utils.rnn.pack_padded_sequence instead."
            )
    arguments = forward_arguments(hx=hx, timespans=timespans, lengths=lengths, mask=mask)

    with torch.no_grad(), record_calls(target) as calls:
        result = model(inputs, **arguments)
    call = concatenate_calls(calls, target)

    output = result[0] if isinstance(result, tuple) else result
    if isinstance(output, nn.utils.rnn.PackedSequence):
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
    elif model is target and isinstance(inputs, Tensor) and output.dim() >= 1:
        batched = inputs.dim() == 3
        sequence = output.dim() == (3 if batched else 2)
        if not batched:
            output = output.unsqueeze(0)  # (T, O) -> (1, T, O), or (O,) -> (1, O)
        elif sequence and not getattr(target, "batch_first", True):
            output = output.transpose(0, 1)  # (T, B, O) -> (B, T, O)

    return Activity(
        states=to_numpy(call.states),
        outputs=to_numpy(output),
        neuron_types=neuron_types_of(target),
        mask=None if call.step_mask is None else call.step_mask.cpu().numpy(),
        layer_name=type(target).__name__,
    )


# ---------------------------------------------------------------------- principal components


@dataclass
class PCAResult:
    """Principal components of neuron activity.

    Attributes:
        components: the principal axes, (K, N), unit rows, sorted by explained variance. Each
            axis's sign is fixed so that its largest-magnitude entry is positive.
        explained_variance: the variance of the activity along each axis, (K,), with the
            unbiased (S - 1) normalisation over the S real steps.
        explained_variance_ratio: each axis's share of the total variance of all N neurons,
            (K,). The ratios sum to 1 when K = min(S, N).
        mean: the mean state, (N,), subtracted before the decomposition.
        scale: the per-neuron scale the centred states were divided by, (N,): ones, or the
            standard deviations with ``standardize=True``.
        projections: the activity in component coordinates, (B, T, K) (NaN at padded steps),
            or (S, K) when the states were given as (S, N).
    """

    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    projections: np.ndarray


def _valid_rows(states: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Stack the real steps of (B, T, N) states (or (T, N), (S, N) rows) into (S, N)."""
    if states.ndim == 2:
        return states if mask is None else states[np.asarray(mask, dtype=bool).reshape(-1)]
    rows = states.reshape(-1, states.shape[-1])  # (B, T, N) -> (B * T, N)
    if mask is None:
        return rows
    return rows[np.asarray(mask, dtype=bool).reshape(-1)]


def _states_and_mask(activity: Activity | Any, mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(activity, Activity):
        states = activity.states
        mask = activity.mask if mask is None else mask
    else:
        states = to_numpy(activity)
    if states.ndim not in (2, 3):
        raise ValueError(
            f"states must have shape (B, T, N) or (S, N), got {states.ndim} dims with shape "
            f"{states.shape}."
        )
    if mask is not None:
        mask = np.asarray(mask.cpu() if isinstance(mask, Tensor) else mask, dtype=bool)
        if mask.shape != states.shape[:-1]:
            raise ValueError(
                f"mask must have shape {states.shape[:-1]} (the states' shape without N), got "
                f"{mask.shape}."
            )
    return states, mask


def activity_pca(
    activity: Activity | np.ndarray | Tensor,
    n_components: int | None = None,
    *,
    mask: np.ndarray | Tensor | None = None,
    standardize: bool = False,
) -> PCAResult:
    """Compute the principal components of neuron activity and the variance each explains.

    Every real step of every sample is one observation of the N-dimensional state. The states
    are centred (and divided by each neuron's standard deviation with ``standardize=True``)
    and decomposed by a singular value decomposition ``X = U S V^T``. The variance along
    component k is ``S_k^2 / (S - 1)`` for S observations.

    A large share on the first component means that the neurons move together along one
    direction, which makes the circuit's activity easier to read.

    Args:
        activity: an ``Activity``, or states (B, T, N) or (S, N).
        n_components: K, the number of components to keep (default min(S, N)).
        mask: (B, T) bool, True at real steps; default ``activity.mask``.
        standardize: divide each neuron by its standard deviation first, so that neurons with
            a large range do not dominate. Constant neurons are left at 0.

    Returns:
        A ``PCAResult``.
    """
    states, mask = _states_and_mask(activity, mask)
    rows = _valid_rows(states, mask)  # (S, N)
    count, units = rows.shape
    if count < 2:
        raise ValueError(f"PCA needs at least 2 real steps, got {count}.")
    limit = min(count, units)
    if n_components is None:
        n_components = limit
    if isinstance(n_components, bool) or not isinstance(n_components, int):
        raise TypeError(f"n_components must be an int or None, got {n_components!r}.")
    if not 1 <= n_components <= limit:
        raise ValueError(
            f"n_components must be in [1, {limit}] (min of {count} steps and {units} neurons), "
            f"got {n_components}."
        )

    mean = rows.mean(axis=0)
    centred = rows - mean  # (S, N)
    scale = np.ones(units)
    if standardize:
        deviation = centred.std(axis=0, ddof=1)
        scale = np.where(deviation > 0, deviation, 1.0)
        centred = centred / scale

    _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # vt: (min(S, N), N)
    variance = singular**2 / (count - 1)
    total = variance.sum()
    if not total > 0:
        raise ValueError(
            "the activity does not vary (every neuron is constant over all steps), so no "
            "component explains any variance."
        )

    components = vt[:n_components]  # (K, N)
    largest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(n_components), largest])
    components = components * signs[:, None]

    whole = (states - mean) / scale  # (..., N)
    projections = whole @ components.T  # (..., K)
    if mask is not None and states.ndim == 3:
        projections = np.where(mask[..., None], projections, np.nan)
    return PCAResult(
        components=components,
        explained_variance=variance[:n_components],
        explained_variance_ratio=variance[:n_components] / total,
        mean=mean,
        scale=scale,
        projections=projections,
    )


# ---------------------------------------------------------------------- correlation


def neuron_output_correlation(
    activity: Activity | np.ndarray | Tensor,
    outputs: np.ndarray | Tensor | None = None,
    *,
    mask: np.ndarray | Tensor | None = None,
) -> np.ndarray:
    """Return the Pearson correlation of each neuron's state with each output, (N, O).

    The correlation runs over every real step of every sample. Pass ``outputs`` to correlate
    with something other than the model's output, such as the steering command a driver gave.
    An entry is NaN when the neuron or the output is constant over those steps.

    Args:
        activity: an ``Activity``, or states (B, T, N).
        outputs: (B, T, O) or (B, T); default ``activity.outputs``.
        mask: (B, T) bool, True at real steps; default ``activity.mask``.
    """
    states, mask = _states_and_mask(activity, mask)
    if outputs is None:
        if not isinstance(activity, Activity):
            raise ValueError("pass outputs when activity is an array of states.")
        outputs = activity.outputs
    outputs = to_numpy(outputs)
    if outputs.shape == states.shape[:-1]:
        outputs = outputs[..., None]  # (B, T) -> (B, T, 1)
    if outputs.ndim != states.ndim or outputs.shape[:-1] != states.shape[:-1]:
        raise ValueError(
            f"outputs must have one value per sample and step, shape {states.shape[:-1]} + "
            f"(O,), to match states of shape {states.shape}; got {outputs.shape}. A model that "
            f"returns only its final output needs return_sequences=True here."
        )

    x = _valid_rows(states, mask)  # (S, N)
    y = _valid_rows(outputs, mask)  # (S, O)
    # Constant columns are found exactly: after centring, rounding leaves them tiny but nonzero.
    varies = (np.ptp(x, axis=0) > 0)[:, None] & (np.ptp(y, axis=0) > 0)[None, :]  # (N, O)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    covariance = x.T @ y  # (N, O)
    norms = np.sqrt((x**2).sum(axis=0))[:, None] * np.sqrt((y**2).sum(axis=0))[None, :]
    correlation = np.full(covariance.shape, np.nan)
    np.divide(covariance, norms, out=correlation, where=varies & (norms > 0))
    return correlation
