"""Event encoding of discrete sequences, shared by the XOR and digits data sets."""

from __future__ import annotations

import numpy as np

from torchlnn.data._types import PAD_TIMESPAN


def change_events(
    values: np.ndarray,
    lengths: np.ndarray,
    *,
    pad_size: int,
    close_last: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Encode sequences of discrete values as events, one event per change of value.

    A step :math:`i` of sequence :math:`x` is an event when :math:`i = 0` or
    :math:`x_i \ne x_{i-1}`. With ``close_last=True``, the last real step is an event too, so
    that the length of the final run of equal values is kept. Event :math:`k` at step
    :math:`p_k` carries the value :math:`x_{p_k}` and the elapsed time

    .. math:: \Delta t_k = p_k - p_{k-1}, \qquad p_{-1} = -1,

    counted in steps, so the first event at step 0 has :math:`\Delta t_0 = 1` and the elapsed
    times of a sequence sum to the step of its last event plus one.

    Args:
        values: ``(N, L)`` integer array, the sequences padded to a common width ``L``.
        lengths: ``(N,)`` number of real steps of each sequence, in ``[1, L]``.
        pad_size: number of event slots ``P`` per sequence. Events beyond ``P`` are dropped.
        close_last: whether the last real step is always an event.

    Returns:
        ``event_values`` ``(N, P)`` float32, ``timespans`` ``(N, P)`` float32, ``mask``
        ``(N, P)`` bool and ``num_events`` ``(N,)`` int64 (before truncation to ``P``). Padded
        slots hold value 0 and timespan 1.0.
    """
    values = np.asarray(values)
    lengths = np.asarray(lengths, dtype=np.int64)
    if values.ndim != 2:
        raise ValueError(f"values must have shape (N, L), got {values.shape}.")
    num_sequences, width = values.shape
    if lengths.shape != (num_sequences,):
        raise ValueError(f"lengths must have shape ({num_sequences},), got {lengths.shape}.")
    if num_sequences > 0 and (lengths.min() < 1 or lengths.max() > width):
        raise ValueError(
            f"lengths must lie in [1, {width}], got values in [{lengths.min()}, {lengths.max()}]."
        )
    if pad_size < 1:
        raise ValueError(f"pad_size must be at least 1, got {pad_size}.")

    # Mark the event steps.
    steps = np.arange(width)  # (L,)
    is_real = steps[None, :] < lengths[:, None]  # (N, L)
    is_change = np.ones((num_sequences, width), dtype=bool)  # (N, L)
    is_change[:, 1:] = values[:, 1:] != values[:, :-1]
    is_event = is_real & is_change  # (N, L)
    if close_last:
        is_event |= steps[None, :] == (lengths[:, None] - 1)
    num_events = is_event.sum(axis=1)  # (N,)

    # Move the event steps to the front of each row, keeping their order. A stable sort of
    # "not an event" puts the event positions first, in increasing step order.
    positions = np.argsort(~is_event, axis=1, kind="stable")  # (N, L)
    slots = min(width, pad_size)
    positions = positions[:, :slots]  # (N, slots)
    slot_is_event = np.arange(slots)[None, :] < num_events[:, None]  # (N, slots)

    # Value and elapsed steps of each event.
    event_values = np.take_along_axis(values, positions, axis=1).astype(np.float32)  # (N, slots)
    previous = np.concatenate(
        [np.full((num_sequences, 1), -1), positions[:, :-1]], axis=1
    )  # (N, slots)
    timespans = (positions - previous).astype(np.float32)  # (N, slots)

    # Padding: value 0, timespan PAD_TIMESPAN, and widen to pad_size if L < pad_size.
    event_values[~slot_is_event] = 0.0
    timespans[~slot_is_event] = PAD_TIMESPAN
    if slots < pad_size:
        extra = pad_size - slots
        event_values = np.pad(event_values, ((0, 0), (0, extra)))  # (N, P)
        timespans = np.pad(timespans, ((0, 0), (0, extra)), constant_values=PAD_TIMESPAN)
        slot_is_event = np.pad(slot_is_event, ((0, 0), (0, extra)))  # (N, P)
    return event_values, timespans, slot_is_event, num_events.astype(np.int64)
