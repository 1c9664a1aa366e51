"""Helpers shared by the cells: positivity, elapsed-time checks and wiring preparation."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchlnn._compat import is_tracing_or_compiling
from torchlnn.wirings import FullyConnected, Wiring

# Smallest value of a positive parameter. In float32, softplus alone underflows to exactly 0 for
# raw values below about -104, which an aggressive optimiser step can reach. A capacitance of 0
# would then divide 0 by 0 at a zero elapsed time.
POSITIVE_FLOOR = 1e-6


def positive(raw: Tensor) -> Tensor:
    """Map an unconstrained parameter to a positive value: ``softplus(raw) + POSITIVE_FLOOR``."""
    return F.softplus(raw) + POSITIVE_FLOOR


def inverse_positive(value: Tensor) -> Tensor:
    """Return ``raw`` with ``positive(raw) == value``, for ``value > POSITIVE_FLOOR``.

    Computed as ``y + log(-expm1(-y))`` with ``y = value - POSITIVE_FLOOR``, which stays
    accurate for small and large values.
    """
    shifted = value - POSITIVE_FLOOR
    return shifted + torch.log(-torch.expm1(-shifted))


def uniform(shape: tuple[int, ...], low: float, high: float) -> Tensor:
    """Return a tensor drawn uniformly from [low, high) with torch's global generator."""
    return torch.rand(shape) * (high - low) + low


def resolve_wiring(units: int | Wiring, input_size: int | None, owner: str) -> Wiring:
    """Return the wiring a layer or cell uses, built for ``input_size`` features.

    An int gives ``FullyConnected(units)``. A wiring instance that is not built yet is built in
    place, so the caller's object shows the input size afterwards, as in ncps. A wiring built
    for another input size raises ValueError, because one instance describes one layer.
    """
    if isinstance(units, Wiring):
        wiring = units
    elif isinstance(units, numbers.Integral) and not isinstance(units, bool):
        wiring = FullyConnected(int(units))
    else:
        raise TypeError(
            f"{owner}: units must be an int (number of neurons) or a torchlnn.wirings.Wiring, "
            f"got {units!r} ({type(units).__name__})."
        )
    if input_size is not None:
        wiring.build(input_size)
    if not wiring.is_built():
        raise ValueError(
            f"{owner}: the wiring does not know its number of input features. Pass "
            f"in_features/input_size, or call wiring.build(input_dim) first."
        )
    return wiring


def check_elapsed_time(dt: Any, batch: int, owner: str) -> float | Tensor:
    """Validate one step's elapsed time and return a float or a (B, 1) tensor.

    Accepted: a non-negative number, a 0-d tensor, or a tensor of shape (B,) or (B, 1).
    """
    if isinstance(dt, Tensor):
        if dt.dim() == 0:
            dt = dt.reshape(1, 1)
        elif dt.shape in ((batch,), (batch, 1)):
            dt = dt.reshape(batch, 1)  # (B,) or (B, 1) -> (B, 1)
        else:
            raise ValueError(
                f"{owner}: dt must be a number, a 0-d tensor, or a tensor of shape ({batch},) "
                f"or ({batch}, 1) with one elapsed time per sample; got shape {tuple(dt.shape)}."
            )
        if not is_tracing_or_compiling():
            if torch.isnan(dt).any() or (dt < 0).any():
                raise ValueError(
                    f"{owner}: dt must be non-negative and not NaN, got values between "
                    f"{float(dt.min()):g} and {float(dt.max()):g}."
                )
        return dt
    if isinstance(dt, numbers.Real) and not isinstance(dt, bool):
        if math.isnan(dt) or dt < 0:
            raise ValueError(f"{owner}: dt must be non-negative and not NaN, got {dt}.")
        return float(dt)
    raise TypeError(f"{owner}: dt must be a number or a tensor, got {type(dt).__name__}.")


def wiring_mismatches(module: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Return a message for each connectivity buffer of ``module`` that ``state_dict`` changes.

    Every :class:`WiredModule` inside ``module`` is checked, with the keys that
    ``module.state_dict()`` would use.
    """
    messages = []
    for name, child in module.named_modules():
        if isinstance(child, WiredModule):
            messages += child.structure_mismatches(state_dict, f"{name}." if name else "")
    return messages


class CheckedWiringLoad(nn.Module):
    """A module that rejects a state dict of another wiring before it copies any tensor.

    ``load_state_dict`` first compares the connectivity buffers of every wired module inside
    this one with the checkpoint's, and raises a RuntimeError naming those that differ, so
    the model keeps all of its weights. Inside a larger model that is not a torchlnn module,
    PyTorch loads the modules one after another: a wired module then still keeps all of its
    own tensors, while modules loaded before it take the checkpoint's values.
    """

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        messages = wiring_mismatches(self, state_dict)
        if messages:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}; nothing was "
                "loaded:\n\t" + "\n\t".join(messages)
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class WiredModule(CheckedWiringLoad):
    """A module whose connectivity buffers (``STRUCTURE``) come from a wiring.

    Loading a state dict whose connectivity buffers differ raises a RuntimeError that names
    them. Such a checkpoint was saved from a model with another wiring, and loading it must
    not silently change this model's synapses or fill them with weights that belong to other
    synapses, so none of this module's tensors is loaded.
    """

    STRUCTURE: tuple[str, ...] = ()

    def structure_mismatches(self, state_dict: dict[str, Tensor], prefix: str) -> list[str]:
        """Return a message for each of this module's connectivity buffers that differs."""
        messages = []
        for name in self.STRUCTURE:
            key = prefix + name
            own = getattr(self, name)
            incoming = state_dict.get(key)
            if incoming is None:
                continue
            if incoming.shape == own.shape and torch.equal(incoming.to(own), own):
                continue
            messages.append(
                f"The connectivity buffer '{key}' in the checkpoint differs from this model's "
                f"wiring (checkpoint shape {tuple(incoming.shape)}, this model "
                f"{tuple(own.shape)}). The checkpoint was saved from a model with another "
                f"wiring. Build the model with that wiring (torchlnn.wirings.from_config) "
                f"before loading."
            )
        return messages

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing, unexpected, error_msgs
    ) -> None:
        messages = self.structure_mismatches(state_dict, prefix)
        if messages:
            error_msgs.extend(messages)  # PyTorch raises them once every module was visited
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing, unexpected, error_msgs
        )
