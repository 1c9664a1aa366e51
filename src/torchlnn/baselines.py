"""Continuous-time baselines for the experiments: the CT-RNN.

The continuous-time RNN (Funahashi and Nakamura, 1993) is the model the LTC paper (Hasani et
al., AAAI 2021) compares LTC against. Its state follows

.. math::

    \\frac{dh}{dt} = -\\frac{h}{\\tau} + \\tanh(W [x; h] + b)

with one positive time constant ``tau`` per neuron, an input ``x`` held constant over each
input step, and ``[x; h]`` the concatenation of input and state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchlnn.layers._inputs import check_input, check_mask, check_state, check_timespans


class CTRNN(nn.Module):
    r"""A continuous-time RNN over a sequence, integrated with the elapsed time of each step.

    Each input step of elapsed time ``dt`` is split into ``ode_unfolds`` sub-steps of length
    ``s = dt / ode_unfolds``. Each sub-step is one exponential-Euler step: the leak is
    integrated exactly and the drive ``g = tanh(W [x; h] + b)`` is held at its value at the
    start of the sub-step,

    .. math::

        h \leftarrow e^{-s/\tau} h + \tau \left(1 - e^{-s/\tau}\right) g .

    As ``s -> 0`` this agrees with explicit Euler to first order. Unlike explicit Euler it
    is stable for every ``dt`` and ``tau``: the state stays within ``[-tau, tau]`` once
    it starts there, because ``|g| <= 1``.

    Shape letters: B batch, T steps, F input features, N neurons.

    Args:
        input_size: F, the number of input features.
        units: N, the number of neurons; the output is the whole state.
        ode_unfolds: sub-steps per input step.
        tau: initial time constant of every neuron, in the unit of ``timespans`` (learned).
        batch_first: input is (B, T, F) when True, (T, B, F) when False.

    Parameters: ``linear`` (weights ``W`` of shape (N, F + N) and bias ``b``), and
    ``tau_raw`` (N,) with ``tau = softplus(tau_raw)``.
    """

    def __init__(
        self,
        input_size: int,
        units: int,
        ode_unfolds: int = 6,
        tau: float = 1.0,
        batch_first: bool = True,
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CTRNN: {name} must be an int >= 1, got {value!r}.")
        if isinstance(ode_unfolds, bool) or not isinstance(ode_unfolds, int) or ode_unfolds < 1:
            raise ValueError(f"CTRNN: ode_unfolds must be an int >= 1, got {ode_unfolds!r}.")
        if not tau > 0:
            raise ValueError(f"CTRNN: tau must be positive, got {tau!r}.")
        self.input_size = input_size
        self.units = units
        self.ode_unfolds = ode_unfolds
        self.batch_first = bool(batch_first)
        self.linear = nn.Linear(input_size + units, units)
        # softplus(raw) = tau  <=>  raw = log(exp(tau) - 1)
        self.tau_raw = nn.Parameter(torch.full((units,), math.log(math.expm1(tau))))

    @property
    def tau(self) -> Tensor:
        """(N,) positive time constants."""
        return F.softplus(self.tau_raw)

    @property
    def state_size(self) -> int:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def forward(
        self,
        input: Tensor,
        hx: Tensor | None = None,
        timespans: float | Tensor | None = None,
        *,
        lengths: Tensor | list[int] | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run over a sequence and return ``(output, h_n)``.

        Arguments and shapes as in ``torchlnn.LTC.forward``: ``input`` (B, T, F), ``hx``
        (B, N), ``timespans`` a number or (B, T), ``lengths`` (B,) or ``mask`` (B, T). Masked
        steps keep the state unchanged and give a zero output. Returns the states of every
        step (B, T, N) and the final state (B, N).
        """
        owner = type(self).__name__
        x, batched = check_input(input, self.input_size, self.batch_first, owner)
        batch, steps, _ = x.shape
        dt = check_timespans(
            timespans, batch, steps, self.batch_first, batched, x, owner
        )  # float or (B, T, 1)
        step_mask = check_mask(
            lengths, mask, batch, steps, self.batch_first, batched, x.device, owner
        )  # (B, T) or None
        h, _ = check_state(hx, batch, self.units, batched, False, x, owner)  # (B, N)

        # The input part of W [x; h] + b does not change within a step: compute it for all
        # steps at once.
        weight_x = self.linear.weight[:, : self.input_size]  # (N, F)
        weight_h = self.linear.weight[:, self.input_size :]  # (N, N)
        drive_x = x @ weight_x.T + self.linear.bias  # (B, T, N)
        tau = self.tau  # (N,)

        states = []
        for t in range(steps):
            dt_t = dt if isinstance(dt, float) else dt[:, t]  # float or (B, 1)
            sub_step = dt_t / self.ode_unfolds
            decay = torch.exp(-sub_step / tau)  # (N,) or (B, N)

            h_next = h
            for _ in range(self.ode_unfolds):
                g = torch.tanh(drive_x[:, t] + h_next @ weight_h.T)  # (B, N)
                h_next = decay * h_next + tau * (1.0 - decay) * g

            if step_mask is not None:
                real = step_mask[:, t].unsqueeze(-1)  # (B, 1)
                h_next = torch.where(real, h_next, h)
            h = h_next
            states.append(h)

        output = torch.stack(states, dim=1)  # (B, T, N)
        if step_mask is not None:
            output = output * step_mask.unsqueeze(-1).to(output.dtype)
        if not batched:
            return output.squeeze(0), h.squeeze(0)  # (T, N), (N,)
        if not self.batch_first:
            output = output.transpose(0, 1)  # (B, T, N) -> (T, B, N)
        return output, h

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, units={self.units}, "
            f"ode_unfolds={self.ode_unfolds}, batch_first={self.batch_first}"
        )
