"""The system time constant of each LTC neuron along a sequence.

Shape letters: B samples, T steps, N neurons.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from torchlnn.cells import LTCCell
from torchlnn.layers import LTC

from ._recording import (
    concatenate_calls,
    elapsed_times,
    find_recurrent_layer,
    forward_arguments,
    liquid_step,
    previous_states,
    record_calls,
)
from .activity import to_numpy


def time_constants(
    model: nn.Module,
    inputs: Tensor,
    *,
    timespans: float | Tensor | None = None,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
    lengths: Tensor | list[int] | None = None,
    mask: Tensor | None = None,
    layer: nn.Module | None = None,
) -> np.ndarray:
    r"""Return each LTC neuron's system time constant at every step of a sequence, (B, T, N).

    For neuron ``i`` at step ``t``,

    .. math::

        \tau_{sys,i}(t) = \frac{C_{m,i}}{g_{leak,i} + \sum_j w_{ji}\,
            \mathrm{sigmoid}(\sigma_{ji}(v_j - \mu_{ji}))
            + \sum_k w^s_{ki}\, \mathrm{sigmoid}(\sigma^s_{ki}(u_k(t) - \mu^s_{ki}))},

    the time scale on which the membrane potential relaxes (``LTCCell.time_constants``). It is
    evaluated at the step's input ``u(t)`` and at the state ``v`` the step starts from: the
    state after step ``t - 1`` (``hx`` at the first step), after the LSTM update when the
    layer has mixed memory. The unit is that of ``timespans`` (1.0 = one step by default).

    Args:
        model: a ``torchlnn.LTC`` layer or a module that contains one (see
            ``record_activity``).
        inputs, timespans, hx, lengths, mask: passed on to ``model`` when given.
        layer: the LTC layer to analyse, when ``model`` contains several recurrent layers.

    Returns:
        float64 array (B, T, N); NaN at padded steps (steps that ``lengths`` or ``mask`` marks as
        padding).
    """
    target = find_recurrent_layer(model, layer)
    if not isinstance(target, LTC) or not isinstance(target.rnn_cell, LTCCell):
        raise TypeError(
            f"time constants are defined for LTC neurons (torchlnn.LTC), but the recurrent "
            f"layer is a {type(target).__name__}. A CfC has no membrane capacitance or "
            f"conductances from which to compute them."
        )
    arguments = forward_arguments(hx=hx, timespans=timespans, lengths=lengths, mask=mask)

    cell = target.rnn_cell
    with torch.no_grad():
        with record_calls(target) as calls:
            model(inputs, **arguments)
        call = concatenate_calls(calls, target)

        batch, steps, _ = call.input.shape
        h_previous, c_previous = previous_states(target, call)  # (B, T, N) each
        flat_c = None if c_previous is None else c_previous.reshape(batch * steps, -1)
        start, _ = liquid_step(
            target,
            call.input.reshape(batch * steps, -1),  # (B, T, F) -> (B * T, F)
            h_previous.reshape(batch * steps, -1),  # (B, T, N) -> (B * T, N)
            flat_c,
            elapsed_times(call).reshape(batch * steps, 1),
        )  # (B * T, N)
        tau = cell.time_constants(call.input.reshape(batch * steps, -1), start)
        tau = tau.reshape(batch, steps, -1)  # (B * T, N) -> (B, T, N)

    tau = to_numpy(tau)
    if call.step_mask is not None:
        tau = np.where(call.step_mask.cpu().numpy()[..., None], tau, np.nan)
    return tau
