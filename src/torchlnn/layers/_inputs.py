"""Checks and conversions of the sequence layers' arguments: input, hx, timespans, lengths, mask.

Every helper returns batch-first tensors, whatever the layout the caller used, so that the time
loop has one layout to handle. B is the batch size, T the number of steps, F the number of
input features and N the number of neurons.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from torchlnn._compat import is_tracing_or_compiling


def check_input(input: Any, input_size: int, batch_first: bool, owner: str) -> tuple[Tensor, bool]:
    """Return the input as (B, T, F) and whether it was batched."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{owner} expects a torch.Tensor as input, got {type(input).__name__}.")
    layout = "(B, T, F)" if batch_first else "(T, B, F)"
    if input.dim() < 2:
        raise ValueError(
            f"{owner} expects input of shape {layout} (batch_first={batch_first}) or unbatched "
            f"(T, F), got {input.dim()} dims with shape {tuple(input.shape)}. A sequence needs "
            f"a time and a feature dimension: pass one step of F features as "
            f"input.view(1, -1), or T steps of one feature as input.view(-1, 1). To advance one "
            f"step at a time, call the layer's rnn_cell instead."
        )
    if input.dim() > 3:
        raise ValueError(
            f"{owner} expects input of shape {layout} (batch_first={batch_first}) or unbatched "
            f"(T, F), got {input.dim()} dims with shape {tuple(input.shape)}. Flatten the "
            f"feature dimensions first (input.flatten(2) for (B, T, ...)), or encode each step "
            f"with a per-step module, such as a CNN applied to every frame, before this layer."
        )
    if input.shape[-1] != input_size:
        raise ValueError(
            f"{owner} was built for input_size={input_size} features, but the input's last "
            f"dimension is {input.shape[-1]} (shape {tuple(input.shape)})."
        )
    if not input.is_floating_point():
        raise TypeError(f"{owner} expects a floating-point input, got dtype {input.dtype}.")
    batched = input.dim() == 3
    if not batched:
        x = input.unsqueeze(0)  # (T, F) -> (1, T, F)
    elif not batch_first:
        x = input.transpose(0, 1)  # (T, B, F) -> (B, T, F)
    else:
        x = input
    if x.shape[1] == 0:
        raise ValueError(
            f"{owner} expects at least one time step, got input of shape "
            f"{tuple(input.shape)} (layout {layout} with batch_first={batch_first}). Leave empty "
            f"sequences out of the batch, or pad them to one step and give them length 0 in "
            f"lengths."
        )
    return x, batched


def timespans_shapes(batch_first: bool, batched: bool) -> str:
    if not batched:
        return "a number, or a tensor of shape (T,) or (T, 1)"
    if batch_first:
        return "a number, or a tensor of shape (B, T) or (B, T, 1)"
    return "a number, or a tensor of shape (T, B) or (T, B, 1) (batch_first=False)"


def check_timespans(
    timespans: Any,
    batch: int,
    steps: int,
    batch_first: bool,
    batched: bool,
    like: Tensor,
    owner: str,
) -> float | Tensor:
    """Return the elapsed times as a float or a (B, T, 1) tensor of ``like``'s dtype.

    ``None`` means 1.0. Values must be finite and non-negative; zero is allowed and means no
    time passes in that step.
    """
    accepted = timespans_shapes(batch_first, batched)
    if timespans is None:
        return 1.0
    if isinstance(timespans, numbers.Real) and not isinstance(timespans, bool):
        value = float(timespans)
        if not (value >= 0 and value != float("inf")):
            raise ValueError(
                f"{owner}: timespans must be finite and non-negative, got {timespans}."
            )
        return value
    if not isinstance(timespans, Tensor):
        raise TypeError(
            f"{owner}: timespans must be {accepted}; got {type(timespans).__name__}."
        )

    shape = tuple(timespans.shape)
    if timespans.dim() == 0:
        elapsed = timespans.reshape(1, 1, 1).expand(batch, steps, 1)  # () -> (B, T, 1)
    elif not batched and shape in ((steps,), (steps, 1)):
        elapsed = timespans.reshape(1, steps, 1)  # (T,) or (T, 1) -> (1, T, 1)
    elif batched and batch_first and shape in ((batch, steps), (batch, steps, 1)):
        elapsed = timespans.reshape(batch, steps, 1)  # (B, T[, 1]) -> (B, T, 1)
    elif batched and not batch_first and shape in ((steps, batch), (steps, batch, 1)):
        elapsed = timespans.reshape(steps, batch, 1).transpose(0, 1)  # (T, B[, 1]) -> (B, T, 1)
    else:
        expected = f"B={batch}, T={steps}" if batched else f"T={steps}"
        # A trailing dimension other than 1 after the right leading shape reads as one time
        # per feature, which the cells cannot use: the state has one clock per sample.
        leading = {(batch, steps), (steps, batch)} if batched else {(steps,)}
        per_feature = len(shape) >= 2 and shape[:-1] in leading and shape[-1] != 1
        hint = (
            " A separate time per feature is not supported: pass one time per step."
            if per_feature
            else ""
        )
        raise ValueError(
            f"{owner}: timespans must be {accepted} ({expected}), with one elapsed time per "
            f"sample and step; got shape {shape}.{hint}"
        )

    if not timespans.is_floating_point():
        elapsed = elapsed.to(like.dtype)
    if not is_tracing_or_compiling():
        if not torch.isfinite(elapsed).all() or (elapsed < 0).any():
            bad = elapsed[~torch.isfinite(elapsed) | (elapsed < 0)]
            raise ValueError(
                f"{owner}: timespans must be finite and non-negative; got {bad.numel()} "
                f"invalid values, such as {float(bad[0])}."
            )
    return elapsed.to(device=like.device, dtype=like.dtype)


def check_mask(
    lengths: Any,
    mask: Any,
    batch: int,
    steps: int,
    batch_first: bool,
    batched: bool,
    device: torch.device,
    owner: str,
) -> Tensor | None:
    """Return a (B, T) bool mask (True = a real step) from ``lengths`` or ``mask``, or None."""
    if lengths is not None and mask is not None:
        raise ValueError(f"{owner}: pass either lengths or mask, not both.")
    if lengths is not None:
        if isinstance(lengths, Tensor):
            lengths_tensor = lengths.to(device=device)
        elif isinstance(lengths, Sequence):
            lengths_tensor = torch.as_tensor(list(lengths), device=device)
        else:
            raise TypeError(
                f"{owner}: lengths must be a 1-D tensor or a list of ints, got "
                f"{type(lengths).__name__}."
            )
        expected = (batch,) if batched else ((), (1,))
        if (batched and tuple(lengths_tensor.shape) != expected) or (
            not batched and tuple(lengths_tensor.shape) not in expected
        ):
            raise ValueError(
                f"{owner}: lengths must have one entry per sample, shape ({batch},), got shape "
                f"{tuple(lengths_tensor.shape)}."
            )
        if lengths_tensor.is_floating_point() or lengths_tensor.dtype == torch.bool:
            raise TypeError(f"{owner}: lengths must be integers, got dtype {lengths_tensor.dtype}.")
        lengths_tensor = lengths_tensor.reshape(-1)
        if (lengths_tensor < 0).any() or (lengths_tensor > steps).any():
            raise ValueError(
                f"{owner}: every length must be in [0, T={steps}], got "
                f"{lengths_tensor.tolist()}."
            )
        return torch.arange(steps, device=device) < lengths_tensor.unsqueeze(1)  # (B, T)
    if mask is None:
        return None

    if not isinstance(mask, Tensor):
        raise TypeError(f"{owner}: mask must be a bool tensor, got {type(mask).__name__}.")
    shape = tuple(mask.shape)
    if not batched and shape == (steps,):
        result = mask.reshape(1, steps)
    elif batched and batch_first and shape == (batch, steps):
        result = mask
    elif batched and not batch_first and shape == (steps, batch):
        result = mask.transpose(0, 1)  # (T, B) -> (B, T)
    else:
        if not batched:
            accepted = "(T,)"
        elif batch_first:
            accepted = "(B, T)"
        else:
            accepted = "(T, B)"
        raise ValueError(
            f"{owner}: mask must have shape {accepted} with B={batch}, T={steps}; got {shape}."
        )
    if result.dtype != torch.bool:
        raise TypeError(
            f"{owner}: mask must be a bool tensor (True marks a real step), got {result.dtype}."
        )
    return result.to(device)


def check_state(
    hx: Any,
    batch: int,
    units: int,
    batched: bool,
    mixed_memory: bool,
    like: Tensor,
    owner: str,
) -> tuple[Tensor, Tensor | None]:
    """Return the initial ``(h, c)`` as (B, N) tensors; ``c`` is None without mixed memory."""
    if hx is None:
        h = like.new_zeros(batch, units)
        return h, (like.new_zeros(batch, units) if mixed_memory else None)

    expected = f"({batch}, {units})" if batched else f"({units},)"
    if mixed_memory:
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError(
                f"{owner} has mixed_memory=True, so hx must be a tuple (h, c) of two tensors of "
                f"shape {expected}; got {type(hx).__name__}."
            )
        pair = tuple(hx)
    else:
        if not isinstance(hx, Tensor):
            hint = " A tuple (h, c) is only for mixed_memory=True." if isinstance(hx, tuple) else ""
            raise ValueError(
                f"{owner}: hx must be a tensor of shape {expected}; got {type(hx).__name__}.{hint}"
            )
        pair = (hx,)

    states = []
    for name, state in zip(("h", "c"), pair):
        wanted = (batch, units) if batched else (units,)
        if tuple(state.shape) != wanted:
            raise ValueError(
                f"{owner}: hx {name} must have shape {expected} for this input, got "
                f"{tuple(state.shape)}."
            )
        states.append(state if batched else state.unsqueeze(0))  # (N,) -> (1, N)
    return states[0], (states[1] if mixed_memory else None)
