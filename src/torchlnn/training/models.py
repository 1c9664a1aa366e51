"""Sequence models for the training engine: a recurrent layer and a linear read-out.

Every model takes ``(inputs, timespans, mask)`` and returns one output vector per step, so
one LightningModule trains liquid layers and baselines alike. Shape letters: B batch, T steps,
F input features, N neurons, O outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from torchlnn.baselines import CTRNN
from torchlnn.layers import LTC, CfC

# Model names accepted by build_sequence_model, in the order the result tables list them.
MODEL_NAMES: tuple[str, ...] = (
    "ltc",
    "cfc",
    "cfc-nogate",
    "cfc-pure",
    "cfc-mixed",
    "ctrnn",
    "lstm",
    "gru",
)

# Models whose recurrent layer takes the elapsed time of each step as an argument. The others
# see it only when the data module appends it to the inputs as a feature.
TIME_AWARE: frozenset[str] = frozenset(
    {"ltc", "cfc", "cfc-nogate", "cfc-pure", "cfc-mixed", "ctrnn"}
)

CFC_MODES = {"cfc": "default", "cfc-nogate": "no_gate", "cfc-pure": "pure", "cfc-mixed": "default"}


class SequenceModel(nn.Module):
    """A recurrent layer followed by a linear read-out applied at every step.

    Args:
        rnn: a torchlnn layer (``LTC``, ``CfC``), a ``CTRNN``, or a batch-first
            ``torch.nn.LSTM`` / ``torch.nn.GRU``.
        hidden_size: the size of the layer's per-step output.
        output_size: O, the read-out size.
        time_aware: whether ``rnn`` takes ``timespans`` and ``mask`` (torchlnn layers and
            the CT-RNN do; ``torch.nn`` RNNs do not).
    """

    def __init__(self, rnn: nn.Module, hidden_size: int, output_size: int, time_aware: bool):
        super().__init__()
        self.rnn = rnn
        self.time_aware = bool(time_aware)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(
        self, inputs: Tensor, timespans: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """Return the read-out of every step, (B, T, O).

        Args:
            inputs: (B, T, F).
            timespans: (B, T) elapsed time of each step, or None for 1.0.
            mask: (B, T) bool, True at real steps, or None. Padding is at the end, so a
                causal layer's outputs at real steps do not depend on it. Time-aware layers
                also keep their state unchanged on padded steps.
        """
        if self.time_aware:
            states, _ = self.rnn(inputs, timespans=timespans, mask=mask)  # (B, T, H)
        else:
            states, _ = self.rnn(inputs)  # (B, T, H)
        return self.head(states)  # (B, T, O)


def build_sequence_model(
    name: str,
    input_size: int,
    output_size: int,
    units: int,
    **options: Any,
) -> SequenceModel:
    """Build model ``name`` with ``units`` recurrent neurons and a linear read-out.

    ========== ==================================================================
    name       recurrent layer
    ========== ==================================================================
    ltc        ``torchlnn.LTC(input_size, units)``, every neuron an output, 6 unfolds
    cfc        ``torchlnn.CfC(input_size, units)`` (mode "default")
    cfc-nogate ``torchlnn.CfC(..., mode="no_gate")``
    cfc-pure   ``torchlnn.CfC(..., mode="pure")``
    cfc-mixed  ``torchlnn.CfC(..., mixed_memory=True)``
    ctrnn      ``torchlnn.baselines.CTRNN(input_size, units)``
    lstm       ``torch.nn.LSTM(input_size, units, batch_first=True)``
    gru        ``torch.nn.GRU(input_size, units, batch_first=True)``
    ========== ==================================================================

    ``options`` go to the layer's constructor (for example ``ode_unfolds=6``,
    ``backbone_units=128``, ``activation="relu"``).
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}.")

    if name == "ltc":
        rnn: nn.Module = LTC(input_size, units, **options)
        hidden = rnn.output_size
    elif name in CFC_MODES:
        rnn = CfC(
            input_size,
            units,
            mode=CFC_MODES[name],
            mixed_memory=name == "cfc-mixed",
            **options,
        )
        hidden = rnn.output_size
    elif name == "ctrnn":
        rnn = CTRNN(input_size, units, **options)
        hidden = units
    else:
        recurrent_class = nn.LSTM if name == "lstm" else nn.GRU
        rnn = recurrent_class(input_size, units, batch_first=True, **options)
        hidden = units

    return SequenceModel(rnn, hidden, output_size, time_aware=name in TIME_AWARE)


def count_parameters(module: nn.Module) -> int:
    """Return the number of trainable values (masks are buffers and are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def last_step(outputs: Tensor, mask: Tensor | None) -> Tensor:
    """Return each sequence's output at its last real step: (B, T, O) -> (B, O)."""
    if mask is None:
        return outputs[:, -1]
    last = mask.sum(dim=1) - 1  # (B,)
    index = last.clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])  # (B, 1, O)
    return torch.gather(outputs, 1, index).squeeze(1)  # (B, O)
