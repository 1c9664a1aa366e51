r"""The fast path of the LTC cell: synapse lists, neuron-major loops, recomputing backward.

The reference ``LTCCell`` evaluates every synapse as an entry of a (B, N, N) tensor, masked
by the wiring. Here the synapses of a sparse wiring are a list of edges (source, target):
the presynaptic potentials are gathered with ``index_select`` and the conductances summed
into their targets with ``index_add``, so the cost follows the number of synapses, not N^2.
A dense wiring keeps an (N, N) layout and sums with a batched matrix product. Both run on
*neuron-major* tensors, the state being (N, B), so that gathers and sums move whole rows.

With the fused solver and autograd recording, the time loop is one
``torch.autograd.Function``. Its forward keeps, for every ODE unfold, only the state that
entered it and the denominator of the update (two (N, B) tensors); its backward recomputes
the synaptic activations from them. The reference keeps several (B, N, N) tensors per unfold,
so this keeps far less memory for backward. The sensory synapses (input only) are evaluated
for all steps at once under ``torch.utils.checkpoint``, which also recomputes them in the
backward instead of storing them.

With the fused solver, ``h = dt / ode_unfolds`` and the synaptic sums ``n``, ``d``, each
unfold computes

.. math::

    P = C_m v + h (s_n + g_{leak} v_{leak}) + h n(v), \qquad
    Q = C_m + h (s_d + g_{leak} + \epsilon) + h d(v), \qquad v \leftarrow P / Q

where ``s_n``, ``s_d`` are the sensory sums. The input-only parts of ``P`` and ``Q`` (the
*base*, (T, N, 2, B)) are computed before the loop.

The Euler and RK4 solvers reuse the same synapse lists through autograd; the adaptive solver
and custom solvers use the reference loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from torchlnn.solvers import RK4, Euler, Fused

from ._fast import DerivedCache, grad_needed

# A synapse matrix becomes an edge list when at most this fraction of its entries are
# synapses. NOTE: measured on a shared 2-core CPU with 64 neurons (docs/benchmarks.md):
# below about half the entries the edge list is faster, forward and backward.
EDGE_DENSITY = 0.5

_CACHE = DerivedCache()


def _solver_kind(solver) -> str | None:
    """Return "fused", "euler" or "rk4" for a built-in solver, None for any other solver."""
    for kind, cls in (("fused", Fused), ("euler", Euler), ("rk4", RK4)):
        if type(solver) is cls:
            return kind
    return None


def supports_fast_path(cell) -> bool:
    """Return True when the cell's solver has a fast path (fused, Euler or RK4)."""
    return _solver_kind(cell.solver) is not None


# ---------------------------------------------------------------------- synapse layouts


@dataclass
class Synapses:
    r"""The synapses from ``S`` sources to ``N`` targets, in the layout the loops use.

    Each synapse has a steepness ``sigma``, a shift ``-sigma mu`` (so that its activation is
    ``sigmoid(sigma x + shift)``), and the two weights ``[w E, w]`` of the numerator and the
    denominator.

    Edge layout (``dense=False``), E synapses: ``source`` and ``target`` (E,) indices;
    ``sigma`` and ``shift`` (E, 1); ``weight`` (E, 2, 1).

    Dense layout (``dense=True``): ``sigma`` and ``shift`` (N, S, 1); ``weight`` (N, 2, S),
    target-major, with zeros where the wiring has no synapse.
    """

    dense: bool
    source: Tensor | None
    target: Tensor | None
    sigma: Tensor
    shift: Tensor
    weight: Tensor
    targets: int

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.sigma, self.shift, self.weight


def _synapses(
    mask: Tensor, sigma: Tensor, mu: Tensor, w: Tensor, erev: Tensor, edges: tuple | None
) -> Synapses:
    """Lay out the synapses of (S, N) parameter matrices; ``edges`` from ``_edge_index``."""
    targets = mask.shape[1]
    if edges is None:
        shift = -(sigma * mu)
        weight = torch.stack((w * erev, w), dim=0)  # (2, S, N)
        return Synapses(
            True,
            None,
            None,
            sigma.t().unsqueeze(-1),  # (N, S, 1)
            shift.t().unsqueeze(-1),
            weight.permute(2, 0, 1),  # (N, 2, S)
            targets,
        )
    source, target = edges
    sigma_e = sigma[source, target]
    w_e = w[source, target]
    return Synapses(
        False,
        source,
        target,
        sigma_e.unsqueeze(-1),  # (E, 1)
        (-(sigma_e * mu[source, target])).unsqueeze(-1),
        torch.stack((w_e * erev[source, target], w_e), dim=1).unsqueeze(-1),  # (E, 2, 1)
        targets,
    )


def _edge_index(mask: Tensor) -> tuple[Tensor, Tensor] | None:
    """Return the (source, target) indices of a (S, N) 0/1 mask, or None to stay dense."""
    count = int(mask.count_nonzero())
    if count > EDGE_DENSITY * mask.numel():
        return None
    source, target = mask.nonzero(as_tuple=True)
    order = torch.argsort(target, stable=True)  # grouped by target: friendlier index_add
    return source[order].contiguous(), target[order].contiguous()


def synaptic_sums(
    synapses: Synapses, presynaptic: Tensor, base: Tensor, weight: Tensor | None = None
) -> Tensor:
    """Return ``base`` plus the synaptic sums ``[n, d]``, shape (N, 2, M).

    ``presynaptic`` is (S, M), the sources' potentials for M columns (samples, or samples
    times steps); ``base`` is (N, 2, M); ``weight`` overrides ``synapses.weight`` (for
    instance pre-multiplied by the sub-step). Differentiable: the Euler and RK4 paths and the
    sensory synapses rely on autograd through it.
    """
    weight = synapses.weight if weight is None else weight
    columns = presynaptic.shape[-1]
    if synapses.dense:
        activation = torch.sigmoid(
            torch.addcmul(synapses.shift, synapses.sigma, presynaptic.unsqueeze(0))
        )  # (N, S, M)
        return torch.baddbmm(base, weight, activation)  # (N, 2, M)
    gathered = presynaptic.index_select(0, synapses.source)  # (E, M)
    activation = torch.sigmoid(torch.addcmul(synapses.shift, synapses.sigma, gathered))
    contribution = activation.unsqueeze(1) * weight  # (E, 2, M)
    summed = base.reshape(synapses.targets, 2 * columns).index_add(
        0, synapses.target, contribution.reshape(-1, 2 * columns)
    )
    return summed.view(synapses.targets, 2, columns)


# ---------------------------------------------------------------------- derived parameters


@dataclass
class Derived:
    """The LTC cell's parameters in the layout of the fast loops.

    Attributes:
        recurrent, sensory: the synapses between neurons and from the inputs.
        cm: (N, 1) capacitance; leak: (N, 2, 1), ``[g_leak v_leak, g_leak]``.
        input_w, input_b: the input mapping's (I,) weight and bias, or None.
    """

    recurrent: Synapses
    sensory: Synapses
    cm: Tensor
    leak: Tensor
    input_w: Tensor | None
    input_b: Tensor | None


def _structure(cell) -> tuple:
    """Return the edge indices of both synapse matrices (cached; they follow the masks)."""

    def build():
        return (
            _edge_index(cell.sparsity_mask),
            _edge_index(cell.sensory_sparsity_mask),
        )

    with torch.no_grad():
        return _CACHE.get(cell, "structure", build)


def derive(cell, record: bool) -> Derived:
    """Return the cell's parameters in the fast layout, cached when not ``record``-ing."""

    def build() -> Derived:
        recurrent_edges, sensory_edges = _structure(cell)
        gleak = cell.gleak
        return Derived(
            recurrent=_synapses(
                cell.sparsity_mask, cell.sigma, cell.mu, cell.w, cell.erev, recurrent_edges
            ),
            sensory=_synapses(
                cell.sensory_sparsity_mask,
                cell.sensory_sigma,
                cell.sensory_mu,
                cell.sensory_w,
                cell.sensory_erev,
                sensory_edges,
            ),
            cm=cell.cm.unsqueeze(-1),
            leak=torch.stack((gleak * cell.vleak, gleak), dim=-1).unsqueeze(-1),
            input_w=getattr(cell, "input_w", None),
            input_b=getattr(cell, "input_b", None),
        )

    if record:
        return build()
    with torch.no_grad():
        return _CACHE.get(cell, "derived", build)


def _sensory_terms(
    derived: Derived, x: Tensor, sigma, shift, weight, input_w, input_b, leak
) -> Tensor:
    """Return ``[s_n + g_leak v_leak, s_d + g_leak]`` for inputs x (M, I), as (N, 2, M).

    The parameters are passed as arguments so that checkpointing sees them.
    """
    u = x
    if input_w is not None:
        u = u * input_w
    if input_b is not None:
        u = u + input_b
    sensory = Synapses(
        derived.sensory.dense,
        derived.sensory.source,
        derived.sensory.target,
        sigma,
        shift,
        weight,
        derived.sensory.targets,
    )
    base = leak.expand(-1, -1, x.shape[0])  # (N, 2, 1) -> (N, 2, M)
    return synaptic_sums(sensory, u.t(), base)


def sensory_terms(derived: Derived, x: Tensor, record: bool) -> Tensor:
    """Return the input-only terms for time-major inputs x (T, B, I), as (T, N, 2, B):
    ``[s_n + g_leak v_leak, s_d + g_leak]``, recomputed in the backward when recording."""
    steps, batch, features = x.shape
    flat = x.reshape(steps * batch, features)  # (M, I), M = T B
    arguments = (
        derived,
        flat,
        *derived.sensory.tensors(),
        derived.input_w,
        derived.input_b,
        derived.leak,
    )
    if record:
        terms = checkpoint(_sensory_terms, *arguments, use_reentrant=False)
    else:
        terms = _sensory_terms(*arguments)
    return terms.view(-1, 2, steps, batch).permute(2, 0, 1, 3)  # (N, 2, M) -> (T, N, 2, B)


def unfold_base(terms: Tensor, cm: Tensor, h: float | Tensor, epsilon: float) -> Tensor:
    """Return the base ``[h terms_n, C_m + h (terms_d + epsilon)]`` of the fused unfolds.

    ``terms`` is (T, N, 2, B) from ``sensory_terms``; ``h`` a float or a (T, 1, 1, B) tensor of
    sub-step lengths. Returns a contiguous (T, N, 2, B) tensor.
    """
    capacitance = torch.cat((torch.zeros_like(cm), cm), dim=-1).unsqueeze(-1)  # (N, 2, 1)
    shift = terms.new_tensor([[0.0], [epsilon]])  # (2, 1): epsilon on the denominator
    return ((terms + shift) * h + capacitance).contiguous()


# ---------------------------------------------------------------------- fused solver


def _activation(synapses: Synapses, v: Tensor) -> tuple[Tensor, Tensor | None]:
    """Return the synaptic activations for the state v (N, B), and the gathered sources."""
    if synapses.dense:
        z = torch.addcmul(synapses.shift, synapses.sigma, v.unsqueeze(0))  # (N, N, B)
        return z.sigmoid_(), None
    gathered = v.index_select(0, synapses.source)  # (E, B)
    return torch.addcmul(synapses.shift, synapses.sigma, gathered).sigmoid_(), gathered


def _fused_unfold(
    synapses: Synapses,
    weight: Tensor,
    h_scale: Tensor | None,
    base: Tensor,
    cm: Tensor,
    v: Tensor,
    out: Tensor,
    denominator_out: Tensor | None,
) -> Tensor:
    """Write one fused unfold's new state into ``out`` (N, B) and return it.

    ``weight`` is the synapse weight times the sub-step when ``h_scale`` is None; otherwise
    ``h_scale`` (1, B) multiplies the sums. ``denominator_out`` receives Q when given.
    """
    activation, _ = _activation(synapses, v)
    if synapses.dense:
        if h_scale is None:
            sums = torch.baddbmm(base, weight, activation)  # (N, 2, B)
        else:
            sums = torch.bmm(weight, activation).mul_(h_scale).add_(base)
    else:
        columns = v.shape[1]
        contribution = activation.unsqueeze(1) * weight  # (E, 2, B)
        if h_scale is not None:
            contribution.mul_(h_scale)
        sums = base.reshape(-1, 2 * columns).index_add(
            0, synapses.target, contribution.view(-1, 2 * columns)
        )
        sums = sums.view(-1, 2, columns)
    numerator = torch.addcmul(sums[:, 0], cm, v)  # (N, B)
    denominator = sums[:, 1]
    if denominator_out is not None:
        denominator_out.copy_(denominator)
    return torch.div(numerator, denominator, out=out)


class FusedSequence(torch.autograd.Function):
    """The fused-solver time loop as one autograd node; see the module docstring.

    Inputs: ``layout`` (the static synapse description), ``unfolds``, ``keep``, ``base``
    (T, N, 2, B), ``v0`` (N, B), ``cm`` (N, 1), ``h`` (a float, or a (T, 1, B) tensor without
    gradient), ``mask`` ((T, 1, B) of 0/1, or None) and the synapses' ``sigma``, ``shift`` and
    ``weight``. Returns the states (T, N, B) with ``keep``, else the final state (N, B).
    """

    @staticmethod
    def forward(ctx, layout, unfolds, keep, base, v0, cm, h, mask, sigma, shift, weight):
        steps, units, _, batch = base.shape
        synapses = Synapses(layout[0], layout[1], layout[2], sigma, shift, weight, units)
        scaled = weight * h if isinstance(h, float) else weight

        states = base.new_empty(steps + 1, units, batch)
        states[0] = v0
        # The states entering unfolds 1 .. U-1 (unfold 0 starts from states[t]), and every
        # unfold's denominator Q.
        entering = base.new_empty(steps, unfolds - 1, units, batch)
        denominators = base.new_empty(steps, unfolds, units, batch)
        finals = torch.empty_like(states[1:]) if mask is not None else None  # before the mask
        for t in range(steps):
            h_scale = None if isinstance(h, float) else h[t]
            v = states[t]
            for u in range(unfolds):
                if u < unfolds - 1:
                    out = entering[t, u]
                else:
                    out = finals[t] if finals is not None else states[t + 1]
                v = _fused_unfold(
                    synapses, scaled, h_scale, base[t], cm, v, out, denominators[t, u]
                )
            if mask is not None:
                torch.where(mask[t] > 0, v, states[t], out=states[t + 1])

        ctx.layout, ctx.unfolds, ctx.keep = layout, unfolds, keep
        ctx.float_h = h if isinstance(h, float) else None
        empty = base.new_empty(0)
        ctx.save_for_backward(
            states,
            entering,
            denominators,
            finals if finals is not None else empty,
            mask if mask is not None else empty,
            h if isinstance(h, Tensor) else empty,
            cm,
            sigma,
            shift,
            weight,
        )
        return states[1:] if keep else states[steps].clone()

    @staticmethod
    def backward(ctx, grad_output):
        (states, entering, denominators, finals, mask, h, cm, sigma, shift, weight) = (
            ctx.saved_tensors
        )
        layout, unfolds = ctx.layout, ctx.unfolds
        finals = finals if finals.numel() else None
        mask = mask if mask.numel() else None
        h = ctx.float_h if ctx.float_h is not None else h
        units = states.shape[1]
        synapses = Synapses(layout[0], layout[1], layout[2], sigma, shift, weight, units)
        scaled = weight * h if isinstance(h, float) else weight
        steps, batch = states.shape[0] - 1, states.shape[2]

        grad_base = states.new_zeros(steps, units, 2, batch)
        grad_cm = torch.zeros_like(states[0])  # (N, B), summed over B at the end
        grad_sigma = torch.zeros_like(_activation_shape(synapses, states[0]))
        grad_shift = torch.zeros_like(grad_sigma)
        grad_weight = states.new_zeros(_weight_grad_shape(synapses, batch))
        pair = states.new_empty(units, 2, batch)  # [dL/dP, dL/dQ] of one unfold

        carry = torch.zeros_like(states[0])
        for t in range(steps - 1, -1, -1):
            if ctx.keep:
                grad_v = carry + grad_output[t]
            elif t == steps - 1:
                grad_v = carry + grad_output
            else:
                grad_v = carry
            carry_direct = None
            if mask is not None:  # v_t = m v_new + (1 - m) v_{t-1}
                carry_direct = grad_v * (1.0 - mask[t])
                grad_v = grad_v * mask[t]
            h_scale = None if isinstance(h, float) else h[t]

            for u in range(unfolds - 1, -1, -1):
                v = states[t] if u == 0 else entering[t, u - 1]
                if u < unfolds - 1:
                    v_next = entering[t, u]
                else:
                    v_next = finals[t] if finals is not None else states[t + 1]
                q = denominators[t, u]

                # v_next = P / Q
                grad_p = torch.div(grad_v, q, out=pair[:, 0])
                torch.mul(grad_p, v_next, out=pair[:, 1]).neg_()
                grad_base[t] += pair
                grad_cm.addcmul_(grad_p, v)
                grad_v = grad_p * cm  # through C_m v

                # Through the synaptic sums: P += h n(v), Q += h d(v).
                activation, gathered = _activation(synapses, v)
                grad_v += _synapse_backward(
                    synapses, scaled, h_scale, pair, activation, gathered, v,
                    grad_sigma, grad_shift, grad_weight,
                )
            carry = grad_v if carry_direct is None else grad_v + carry_direct

        grad_weight = grad_weight if ctx.float_h is None else grad_weight * ctx.float_h
        return (
            None,
            None,
            None,
            grad_base,
            carry,
            grad_cm.sum(-1, keepdim=True),
            None,
            None,
            grad_sigma.sum(-1, keepdim=True),
            grad_shift.sum(-1, keepdim=True),
            _reduce_weight_grad(synapses, grad_weight),
        )


def _activation_shape(synapses: Synapses, v: Tensor) -> Tensor:
    """Return a tensor shaped like the activations for v (N, B), for gradient accumulators."""
    if synapses.dense:
        return v.new_empty(synapses.sigma.shape[0], synapses.sigma.shape[1], v.shape[1])
    return v.new_empty(synapses.sigma.shape[0], v.shape[1])


def _weight_grad_shape(synapses: Synapses, batch: int) -> tuple[int, ...]:
    if synapses.dense:
        return tuple(synapses.weight.shape)  # (N, 2, S), already summed over the batch
    return (synapses.weight.shape[0], 2, batch)  # (E, 2, B), summed at the end


def _reduce_weight_grad(synapses: Synapses, grad_weight: Tensor) -> Tensor:
    if synapses.dense:
        return grad_weight
    return grad_weight.sum(-1, keepdim=True)


def _synapse_backward(
    synapses: Synapses,
    scaled: Tensor,
    h_scale: Tensor | None,
    pair: Tensor,
    activation: Tensor,
    gathered: Tensor | None,
    v: Tensor,
    grad_sigma: Tensor,
    grad_shift: Tensor,
    grad_weight: Tensor,
) -> Tensor:
    """Accumulate the synapse parameter gradients of one unfold; return d(loss)/d(v) (N, B).

    ``pair`` (N, 2, B) is d(loss)/d[P, Q]; the sums entered as ``h [n, d]``.
    """
    grad_sums = pair if h_scale is None else pair * h_scale  # d(loss)/d(sums), up to h
    if synapses.dense:
        # sums = W a:  dW += G a^T,  da = W^T G
        grad_weight.baddbmm_(grad_sums, activation.transpose(1, 2))
        grad_activation = torch.bmm(scaled.transpose(1, 2), grad_sums)  # (N, S, B)
        grad_z = torch.ops.aten.sigmoid_backward(grad_activation, activation)
        grad_sigma.addcmul_(grad_z, v.unsqueeze(0))
        grad_shift.add_(grad_z)
        return (grad_z * synapses.sigma).sum(0)  # (S, B)

    columns = v.shape[1]
    grad_edges = grad_sums.reshape(-1, 2 * columns).index_select(0, synapses.target)
    grad_edges = grad_edges.view(-1, 2, columns)  # (E, 2, B)
    grad_weight.addcmul_(grad_edges, activation.unsqueeze(1))
    grad_activation = torch.linalg.vecdot(grad_edges, scaled, dim=1)  # (E, B)
    grad_z = torch.ops.aten.sigmoid_backward(grad_activation, activation)
    grad_sigma.addcmul_(grad_z, gathered)
    grad_shift.add_(grad_z)
    return torch.zeros_like(v).index_add_(0, synapses.source, grad_z * synapses.sigma)


# ---------------------------------------------------------------------- entry points


def _layout(synapses: Synapses) -> tuple:
    return (synapses.dense, synapses.source, synapses.target)


def _explicit_terms(synapses: Synapses, base: Tensor):
    """Return ``terms(v) -> (numerator, denominator)`` over neuron-major states (N, B)."""

    def terms(v: Tensor) -> tuple[Tensor, Tensor]:
        sums = synaptic_sums(synapses, v, base)  # (N, 2, B)
        return sums[:, 0], sums[:, 1]

    return terms


def run_sequence(
    cell,
    x: Tensor,
    h0: Tensor,
    dt: float | Tensor,
    mask: Tensor | None,
    keep: bool,
    chunk: int,
) -> tuple[Tensor | None, Tensor]:
    """Run an LTC cell over a batch-first sequence with the fast path.

    Args:
        x: (B, T, I) input; h0: (B, N) initial state.
        dt: a float or a (B, T, 1) tensor that does not require grad.
        mask: (B, T) bool or None; False keeps the state.
        keep: return every state (B, T, N); otherwise only the final one.
        chunk: steps whose input terms are computed together when autograd does not record.

    Returns:
        (states or None, h_T).
    """
    record = grad_needed(cell, x, h0)
    derived = derive(cell, record)
    unfolds = cell.ode_unfolds
    batch, steps, _ = x.shape
    x_time = x.transpose(0, 1)  # (B, T, I) -> (T, B, I)
    v0 = h0.t().contiguous()  # (B, N) -> (N, B)
    if isinstance(dt, float):
        dt_time = dt
    else:
        dt_time = dt.reshape(batch, steps).t().unsqueeze(1)  # (B, T, 1) -> (T, 1, B)
    mask_time = None
    if mask is not None:
        mask_time = mask.t().unsqueeze(1).to(x.dtype)  # (B, T) -> (T, 1, B)

    if _solver_kind(cell.solver) == "fused" and record:
        terms = sensory_terms(derived, x_time, record=True)  # (T, N, 2, B)
        h = dt_time / unfolds
        h_base = h if isinstance(h, float) else h.unsqueeze(1)  # (T, 1, 1, B)
        base = unfold_base(terms, derived.cm, h_base, cell.epsilon)
        result = FusedSequence.apply(
            _layout(derived.recurrent),
            unfolds,
            keep,
            base,
            v0,
            derived.cm,
            h,
            mask_time,
            *derived.recurrent.tensors(),
        )
        states, last = (result, result[-1]) if keep else (None, result)
    else:
        states, last = _loop(cell, derived, x_time, v0, dt_time, mask_time, keep, chunk, record)

    last = last.t().contiguous()  # (N, B) -> (B, N)
    if states is not None:
        states = states.permute(2, 0, 1).contiguous()  # (T, N, B) -> (B, T, N)
    return states, last


def _loop(cell, derived, x_time, v, dt, mask, keep, chunk, record):
    """The step-by-step loop: any supported solver, with or without autograd.

    Used for inference with the fused solver (nothing is kept for a backward) and for the
    Euler and RK4 solvers (autograd records through ``synaptic_sums`` when ``record``).
    """
    steps = x_time.shape[0]
    fused = _solver_kind(cell.solver) == "fused"
    unfolds = cell.ode_unfolds
    states = []
    with torch.set_grad_enabled(record):
        for start in range(0, steps, chunk):
            terms = sensory_terms(derived, x_time[start : start + chunk], record=False)
            if fused:
                h = dt / unfolds if isinstance(dt, float) else dt[start : start + chunk] / unfolds
                h_base = h if isinstance(h, float) else h.unsqueeze(1)  # (K, 1, 1, B)
                terms = unfold_base(terms, derived.cm, h_base, cell.epsilon)
                scaled = derived.recurrent.weight * h if isinstance(h, float) else None
            for k in range(terms.shape[0]):
                t = start + k
                if fused:
                    v_next = _fused_steps(derived, terms[k], scaled, h, k, v, unfolds)
                else:
                    dt_t = dt if isinstance(dt, float) else dt[t]
                    terms_t = _explicit_terms(derived.recurrent, terms[k])
                    v_next = cell.solver.integrate(terms_t, derived.cm, v, dt_t, unfolds)
                if mask is not None:
                    v_next = torch.where(mask[t] > 0, v_next, v)
                v = v_next
                if keep:
                    states.append(v)
    return (torch.stack(states) if keep else None), v


def _fused_steps(derived, base, scaled, h, k, v, unfolds):
    """Run the fused unfolds of one step without saving anything; return the new state."""
    synapses = derived.recurrent
    if scaled is None:  # per-sample sub-steps
        weight, h_scale = synapses.weight, h[k]
    else:
        weight, h_scale = scaled, None
    for _ in range(unfolds):
        v = _fused_unfold(synapses, weight, h_scale, base, derived.cm, v, torch.empty_like(v), None)
    return v


def step(cell, x: Tensor, h: Tensor, dt: float | Tensor) -> Tensor:
    """Advance one step without autograd: x (B, I), h (B, N), dt a float or (B, 1)."""
    with torch.no_grad():
        dt_time = dt if isinstance(dt, float) else dt.reshape(1, 1, -1)  # (B, 1) -> (1, 1, B)
        derived = derive(cell, record=False)
        _, last = _loop(cell, derived, x.unsqueeze(0), h.t(), dt_time, None, False, 1, False)
    return last.t()
