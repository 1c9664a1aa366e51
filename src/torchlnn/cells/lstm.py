"""The LSTM memory cell that ``mixed_memory=True`` runs beside a liquid cell."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MixedMemoryLSTMCell(nn.Module):
    r"""An LSTM cell that updates the liquid state before each liquid step.

    Lechner and Hasani, "Learning long-term dependencies in irregularly-sampled time series"
    (2020): the liquid state ``h`` doubles as the LSTM's output state, and a separate memory
    ``c`` carries information over long gaps. Each step computes

    .. math::

        [a, i, f, o] &= W_u u + b + W_h h \\
        c' &= c \odot \mathrm{sigmoid}(f + 1) + \tanh(a) \odot \mathrm{sigmoid}(i) \\
        h' &= \tanh(c') \odot \mathrm{sigmoid}(o)

    and the liquid cell then advances from ``h'``. The ``+ 1`` on the forget gate makes the
    cell keep its memory at initialisation. Same update and initialisation as ncps 1.0.1:
    Xavier-uniform ``W_u``, orthogonal ``W_h``, biases uniform in [-0.1, 0.1].

    Shapes: u (B, I); h and c (B, N).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.input_map = nn.Linear(input_size, 4 * hidden_size, bias=True)
        self.recurrent_map = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        nn.init.xavier_uniform_(self.input_map.weight)
        nn.init.uniform_(self.input_map.bias, -0.1, 0.1)
        nn.init.orthogonal_(self.recurrent_map.weight)

    def prepare_inputs(self, input: Tensor) -> Tensor:
        """Return ``W_u u + b`` for any leading shape, (..., 4N)."""
        return self.input_map(input)

    def advance(self, prepared: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(h', c')`` from one step of ``prepare_inputs`` (B, 4N)."""
        z = prepared + self.recurrent_map(h)
        a, i, f, o = z.chunk(4, dim=-1)  # each (B, N)
        c = c * torch.sigmoid(f + 1.0) + torch.tanh(a) * torch.sigmoid(i)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, c

    def forward(self, input: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Advance one step: ``(h, c) -> (h', c')``."""
        h, c = state
        return self.advance(self.prepare_inputs(input), h, c)
