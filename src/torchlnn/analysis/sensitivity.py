"""Sensitivity of each neuron, and of the output, to small changes of the input.

Three tools, each bounding or measuring a different quantity:

* ``lipschitz_estimate``: for any liquid layer, the largest Jacobian row norm of one step,
  ``max_t ||d h_t[i] / d x_t||_2``, over the steps of real sequences. It is measured, so it is a
  lower bound on the true Lipschitz constant of the step and an estimate of it.
* ``ltc_lipschitz_bound``: for an LTC, an upper bound from the cell's equations that holds for
  every input and every state in a given range.
* ``input_sensitivity``: the gradient of one output with respect to every input of a sequence,
  which shows which steps and features the output depends on.

Shape letters: B samples, T steps, F input features, N neurons, S = B * T steps in all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from torchlnn.cells import LTCCell
from torchlnn.layers import LTC
from torchlnn.layers._sequence import LiquidSequence
from torchlnn.solvers.fused import Fused

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

# The logistic sigmoid's derivative s(1 - s) is at most 1/4, reached at 0.
_SIGMOID_SLOPE = 0.25


# ---------------------------------------------------------------------- measured


@dataclass
class LipschitzEstimate:
    """Measured one-step Jacobian row norms of each neuron.

    Attributes:
        input: ``max_t ||d h_t[i] / d x_t||_2`` over all real steps, (N,): how much neuron i's
            state after one step can change per unit change of that step's input.
        state: ``max_t ||d h_t[i] / d h_{t-1}||_2``, (N,): the same for the previous state.
        input_norms: the input row norm at every step, (B, T, N); NaN at padded steps.
        state_norms: the state row norm at every step, (B, T, N); NaN at padded steps.
    """

    input: np.ndarray
    state: np.ndarray
    input_norms: np.ndarray
    state_norms: np.ndarray


def lipschitz_estimate(
    model: nn.Module,
    inputs: Tensor,
    *,
    timespans: float | Tensor | None = None,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
    lengths: Tensor | list[int] | None = None,
    mask: Tensor | None = None,
    layer: nn.Module | None = None,
) -> LipschitzEstimate:
    r"""Measure each neuron's one-step Lipschitz constants along real sequences.

    The layer's step map ``h_t = step(x_t, h_{t-1}, dt_t)`` is evaluated at every recorded
    step, and its Jacobians are computed exactly by automatic differentiation: row ``i`` of
    ``d h_t / d x_t`` (F entries) and of ``d h_t / d h_{t-1}`` (N entries). The estimate of
    neuron ``i``'s constant is the largest Euclidean norm of its row over all steps:

    .. math::

        \hat L^x_i = \max_{b, t} \left\| \frac{\partial h_{t,i}}{\partial x_t} \right\|_2 .

    Since it is a maximum over the visited points only, it is a lower bound on the step's true
    Lipschitz constant. ``ltc_lipschitz_bound`` gives an upper bound for an LTC. With mixed
    memory the step includes the LSTM update, and the state Jacobian is taken with respect to
    ``h_{t-1}`` with the LSTM memory ``c_{t-1}`` held fixed.

    Args:
        model: a liquid layer (``torchlnn.LTC`` or ``torchlnn.CfC``) or a module containing
            one; the Jacobians are those of that layer's step, from its own input.
        inputs, timespans, hx, lengths, mask: passed on to ``model`` when given.
        layer: the liquid layer, when ``model`` contains several recurrent layers.
    """
    target = find_recurrent_layer(model, layer)
    if not isinstance(target, LiquidSequence):
        raise TypeError(
            f"lipschitz_estimate needs a liquid layer (torchlnn.LTC or torchlnn.CfC), whose "
            f"step it can run alone; got {type(target).__name__}. For any model, "
            f"input_sensitivity measures the gradient of the output instead."
        )
    arguments = forward_arguments(hx=hx, timespans=timespans, lengths=lengths, mask=mask)
    with torch.no_grad(), record_calls(target) as calls:
        model(inputs, **arguments)
    call = concatenate_calls(calls, target)

    batch, steps, features = call.input.shape
    with torch.no_grad():
        h_previous, c_previous = previous_states(target, call)  # (B, T, N) each
    x = call.input.reshape(batch * steps, features).detach().requires_grad_(True)  # (S, F)
    h = h_previous.reshape(batch * steps, -1).detach().requires_grad_(True)  # (S, N)
    c = None if c_previous is None else c_previous.reshape(batch * steps, -1).detach()
    dt = elapsed_times(call).reshape(batch * steps, 1).detach()  # (S, 1)

    with torch.enable_grad():
        _, h_new = liquid_step(target, x, h, c, dt)  # (S, N)
        units = h_new.shape[1]
        input_norms = torch.empty(batch * steps, units, dtype=torch.float64)
        state_norms = torch.empty(batch * steps, units, dtype=torch.float64)
        # The steps are independent samples of the batch, so the gradient of the sum of
        # neuron i over the batch has, in row s, exactly row i of step s's Jacobian.
        for i in range(units):
            grad_x, grad_h = torch.autograd.grad(
                h_new[:, i].sum(), (x, h), retain_graph=i < units - 1, allow_unused=True
            )
            input_norms[:, i] = _row_norms(grad_x, x)
            state_norms[:, i] = _row_norms(grad_h, h)

    input_norms = input_norms.reshape(batch, steps, units).numpy()  # (S, N) -> (B, T, N)
    state_norms = state_norms.reshape(batch, steps, units).numpy()
    if call.step_mask is not None:
        real = call.step_mask.cpu().numpy()[..., None]  # (B, T, 1)
        input_norms = np.where(real, input_norms, np.nan)
        state_norms = np.where(real, state_norms, np.nan)
    return LipschitzEstimate(
        input=np.nanmax(input_norms.reshape(-1, units), axis=0),
        state=np.nanmax(state_norms.reshape(-1, units), axis=0),
        input_norms=input_norms,
        state_norms=state_norms,
    )


def _row_norms(gradient: Tensor | None, like: Tensor) -> Tensor:
    if gradient is None:  # the neuron does not depend on this argument at all
        return torch.zeros(like.shape[0], dtype=torch.float64)
    return gradient.detach().to(torch.float64).norm(dim=1).cpu()


# ---------------------------------------------------------------------- analytical (LTC)


@dataclass
class LipschitzBound:
    """Upper bounds, from the LTC equations, on how strongly each neuron responds.

    Attributes:
        vector_field_input: ``sup ||d f_i / d x||_2`` over all inputs and all states in
            ``state_range``, (N,), where ``f = dv/dt`` is the membrane equation's right-hand
            side and ``x`` the cell's input before the input mapping. Unit: 1/time.
        vector_field_state: ``sup ||d f_i / d v||_2`` over the same set, (N,).
        step_input: a bound on ``||d v_i(t + dt) / d x||_2`` for one input step of the
            layer's fused solver (``ode_unfolds`` sub-steps of ``dt / ode_unfolds``), (N,);
            None for another solver, whose state is not guaranteed to stay in the range.
        step_state: the same for ``||d v_i(t + dt) / d v(t)||_2``, (N,), or None.
        state_range: ``(v_low, v_high)``, the state interval the bounds assume.
        dt: the elapsed time of the step bounds.
    """

    vector_field_input: np.ndarray
    vector_field_state: np.ndarray
    step_input: np.ndarray | None
    step_state: np.ndarray | None
    state_range: tuple[float, float]
    dt: float


def ltc_lipschitz_bound(
    model: nn.Module,
    *,
    dt: float = 1.0,
    state_range: tuple[float, float] | None = None,
    layer: nn.Module | None = None,
) -> LipschitzBound:
    r"""Bound, from the LTC equations, how strongly each neuron responds to input and state.

    With ``f_i = dv_i/dt`` the right-hand side of the membrane equation (see ``LTCCell``), the
    input ``u_k = x_k w^{in}_k + b^{in}_k`` and ``s' \le 1/4`` the sigmoid's slope,

    .. math::

        \left|\frac{\partial f_i}{\partial x_k}\right| \le
            \frac{w^s_{ki} |\sigma^s_{ki}| |w^{in}_k| D^s_{ki}}{4 C_{m,i}}, \qquad
        \left|\frac{\partial f_i}{\partial v_j}\right| \le
            \frac{w_{ji} |\sigma_{ji}| D_{ji}}{4 C_{m,i}} + \delta_{ij}
            \frac{g_{leak,i} + \sum_j w_{ji} + \sum_k w^s_{ki}}{C_{m,i}},

    where ``D = max(|E - v_low|, |E - v_high|)`` bounds ``|E - v_i|`` for a state in
    ``state_range``. The row norms of these entry bounds bound the rows of the Jacobian.

    For the fused solver, one sub-step of length ``h`` has the entry bounds

    .. math::

        \left|\frac{\partial v'_i}{\partial x_k}\right| \le
            \frac{h\, w^s_{ki} |\sigma^s_{ki}| |w^{in}_k| D^s_{ki}}{4 (C_{m,i} + h g_{leak,i})},
        \qquad
        \left|\frac{\partial v'_i}{\partial v_j}\right| \le
            \frac{\delta_{ij} C_{m,i} + h\, w_{ji} |\sigma_{ji}| D_{ji} / 4}
                 {C_{m,i} + h g_{leak,i}},

    and since ``|AB| <= |A| |B|`` entry by entry, chaining ``ode_unfolds`` sub-steps gives
    entry bounds ``G_x`` and ``G_v`` for the whole step, whose row norms are ``step_input``
    and ``step_state``.

    The fused solver keeps every state in the interval spanned by the initial state, 0,
    ``v_leak`` and the reversal potentials. The default ``state_range`` is that interval for a
    zero initial state; pass your own when ``hx`` lies outside it. For other solvers only the
    vector-field bounds are returned, and they hold only while the state stays in the range.
    With mixed memory the bounds cover the liquid cell alone, whose input is the layer's input.

    Args:
        model: a ``torchlnn.LTC``, an ``LTCCell``, or a module containing one LTC layer.
        dt: elapsed time of one input step, for the step bounds.
        state_range: ``(v_low, v_high)``; default as above.
        layer: the LTC layer, when ``model`` contains several recurrent layers.
    """
    cell = model if isinstance(model, LTCCell) else find_recurrent_layer(model, layer)
    if isinstance(cell, LTC):
        cell = cell.rnn_cell
    if not isinstance(cell, LTCCell):
        raise TypeError(
            f"ltc_lipschitz_bound needs an LTC (torchlnn.LTC or LTCCell), got "
            f"{type(cell).__name__}. For other layers use lipschitz_estimate."
        )
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}.")

    with torch.no_grad():
        cm = cell.cm.double()  # (N,)
        device = cm.device
        gleak = cell.gleak.double()
        w = cell.w.double()  # (N_src, N_dst)
        sensory_w = cell.sensory_w.double()  # (I, N)
        erev = cell.erev.double()
        sensory_erev = cell.sensory_erev.double()
        sigma = cell.sigma.double().abs()
        sensory_sigma = cell.sensory_sigma.double().abs()
        input_scale = (
            cell.input_w.double().abs()
            if cell.input_mapping in ("affine", "linear")
            else torch.ones(cell.sensory_size, dtype=torch.float64, device=device)
        )  # (I,)

        if state_range is None:
            zero = torch.zeros(1, dtype=torch.float64, device=device)
            values = torch.cat([zero, cell.vleak.double()])
            values = torch.cat([values, erev[cell.sparsity_mask > 0]])
            values = torch.cat([values, sensory_erev[cell.sensory_sparsity_mask > 0]])
            state_range = (float(values.min()), float(values.max()))
        low, high = (float(value) for value in state_range)
        if not low <= high:
            raise ValueError(
                f"state_range must be (low, high) with low <= high, got {state_range}."
            )

        def reach(potential: Tensor) -> Tensor:
            """max |E - v| over v in [low, high]."""
            return torch.maximum((potential - low).abs(), (potential - high).abs())

        # Entry bounds of the synaptic derivatives, without the capacitance: (I, N), (N, N).
        sensory_slope = (
            sensory_w * sensory_sigma * _SIGMOID_SLOPE * reach(sensory_erev)
        ) * input_scale[:, None]
        synaptic_slope = w * sigma * _SIGMOID_SLOPE * reach(erev)
        max_denominator = gleak + w.sum(0) + sensory_w.sum(0)  # (N,)

        # Vector field: rows are neurons i, so transpose the [src, dst] matrices.
        field_x = sensory_slope.T / cm[:, None]  # (N, I)
        field_v = synaptic_slope.T / cm[:, None]  # (N, N)
        field_v = field_v + torch.diag(max_denominator / cm)

        step_input = step_state = None
        if isinstance(cell.solver, Fused):
            h = dt / cell.ode_unfolds
            damping = (cm + h * gleak)[:, None]  # (N, 1)
            sub_x = h * sensory_slope.T / damping  # (N, I)
            sub_v = (torch.diag(cm) + h * synaptic_slope.T) / damping  # (N, N)
            total_x = torch.zeros_like(sub_x)
            total_v = torch.eye(cm.shape[0], dtype=torch.float64, device=device)
            for _ in range(cell.ode_unfolds):
                total_x = sub_v @ total_x + sub_x
                total_v = sub_v @ total_v
            step_input = total_x.norm(dim=1).cpu().numpy()
            step_state = total_v.norm(dim=1).cpu().numpy()

    return LipschitzBound(
        vector_field_input=field_x.norm(dim=1).cpu().numpy(),
        vector_field_state=field_v.norm(dim=1).cpu().numpy(),
        step_input=step_input,
        step_state=step_state,
        state_range=(low, high),
        dt=float(dt),
    )


# ---------------------------------------------------------------------- input gradients


def input_sensitivity(
    model: nn.Module,
    inputs: Tensor,
    *,
    step: int = -1,
    output_index: int = 0,
    target: Callable[[Tensor], Tensor] | None = None,
    absolute: bool = True,
    **forward_kwargs,
) -> np.ndarray:
    r"""Return the gradient of one output with respect to every input value.

    For sample ``b`` the result is ``d y_b / d inputs[b]`` with ``y_b = output[b, step,
    output_index]`` (``output[b, output_index]`` for a model that returns only its final
    output): how much that output moves per unit change of each input feature at each step.
    Works for any differentiable model whose samples are independent (LTC, CfC, LSTM, a CNN
    policy), so the same instrument compares them.

    Args:
        model: the model; its first return value (or its only one) is the output.
        inputs: a batch, (B, T, F) for a sequence model or any (B, ...) shape.
        step: the output step to explain (default the last).
        output_index: the output feature to explain.
        target: instead of ``step`` and ``output_index``, a function from the model's output
            to one scalar per sample, (B,).
        absolute: return the gradient's magnitude (default) or its signed value.
        **forward_kwargs: passed on to ``model`` (e.g. ``timespans``).

    Returns:
        float64 array shaped like ``inputs``.
    """
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}.")
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        result = model(x, **forward_kwargs)
        output = result[0] if isinstance(result, tuple) else result
        if target is not None:
            selected = target(output)
        elif output.dim() == 3:
            selected = output[:, step, output_index]
        elif output.dim() == 2:
            selected = output[:, output_index]
        else:
            raise ValueError(
                f"the model's output has shape {tuple(output.shape)}; expected (B, T, O) or "
                f"(B, O). Pass target=... to reduce it to one value per sample."
            )
        if selected.shape != (x.shape[0],):
            raise ValueError(
                f"the explained output must be one value per sample, shape ({x.shape[0]},), got "
                f"{tuple(selected.shape)}."
            )
        (gradient,) = torch.autograd.grad(selected.sum(), x)
    gradient = to_numpy(gradient)
    return np.abs(gradient) if absolute else gradient
