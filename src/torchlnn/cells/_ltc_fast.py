r"""The fast path of the LTC cell: synapse lists, sparse sums and a recomputing backward.

The reference ``LTCCell`` evaluates every synapse as an entry of a (B, N, N) tensor, masked
by the wiring. Here the synapses are a list of E edges (source, target), sorted by target.
For a state ``x`` of S sources the activations are

.. math::

    a_e = \mathrm{sigmoid}(\sigma_e x_{source(e)} + c_e), \qquad c_e = -\sigma_e \mu_e,

an (E, M) tensor for M columns (samples, or samples times steps), and the synaptic sums
``n`` (numerator) and ``d`` (denominator) of each target are one sparse matrix product:
``[n; d] = R a`` with ``R`` the (2N, E) CSR matrix holding ``w_e E_e`` in row ``target(e)``
and ``w_e`` in row ``N + target(e)``. The cost follows the number of synapses, not N^2, and a
dense wiring is the case E = S N. All tensors are *neuron-major*: the state is (N, B).

The synapse sums are a ``torch.autograd.Function`` (``SynapseSums``) whose backward
recomputes the activations from its input instead of storing them; the sensory synapses (all
steps at once) and the Euler and RK4 solvers use it. With the fused solver, the whole time
loop is one Function (``FusedSequence``): for every ODE unfold its forward keeps only the
denominator of the update (an (N, B) tensor) and the state, and its backward recomputes the
activations from them. The fused unfold, with ``h = dt / ode_unfolds``, is

.. math::

    P = C_m v + h (s_n + g_{leak} v_{leak}) + h n(v), \qquad
    Q = C_m + h (s_d + g_{leak} + \epsilon) + h d(v), \qquad v \leftarrow P / Q

with ``s_n``, ``s_d`` the sensory sums. The input-only parts of ``P`` and ``Q`` (the *base*,
(T, 2N, B)) are computed before the loop. The adaptive solver and custom solvers use the
reference loop.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from torchlnn.solvers import RK4, Euler, Fused

from ._fast import (
    FAST_PATHS_SUPPORTED,
    DerivedCache,
    grad_needed,
    step_threads,
    thread_workspace,
)

_CACHE = DerivedCache()

# The synapse sums process their columns in blocks of budget / E columns (at least
# _MIN_COLUMNS), so each (E, columns) temporary has about ``budget`` elements. In the backward,
# blocks of 2^16 (256 KB in float32) measured faster than blocks of 2^20, most likely because
# more of its temporaries stay in the L2 cache (times in docs/benchmarks.md). The forward
# makes fewer temporaries and keeps 2^20.
_FORWARD_BUDGET = 1 << 20
_BACKWARD_BUDGET = 1 << 16
_MIN_COLUMNS = 16


def _solver_kind(solver) -> str | None:
    """Return "fused", "euler" or "rk4" for a built-in solver, None for any other solver."""
    for kind, cls in (("fused", Fused), ("euler", Euler), ("rk4", RK4)):
        if type(solver) is cls:
            return kind
    return None


def supports_fast_path(cell) -> bool:
    """Return True when the cell's solver has a fast path (fused, Euler or RK4) and this
    PyTorch supports the fast paths (see ``FAST_PATHS_SUPPORTED``)."""
    return FAST_PATHS_SUPPORTED and _solver_kind(cell.solver) is not None


# ---------------------------------------------------------------------- synapse lists


@dataclass
class Edges:
    """The static structure of a synapse matrix, with the CSR index arrays (int32, which
    the CPU sparse kernels use without a conversion).

    Attributes:
        sources, targets: S and N, the matrix's shape.
        source, target: (E,) indices, sorted by target.
        sum_rows, sum_columns: the CSR indices of the (2N, E) sum matrix.
        by_source_rows, by_source_columns: the CSR indices of the (S, E) matrix that sends
            each edge's gradient back to its source.
        by_source: (E,) the edge order sorted by source.
    """

    sources: int
    targets: int
    source: Tensor
    target: Tensor
    sum_rows: Tensor
    sum_columns: Tensor
    by_source_rows: Tensor
    by_source_columns: Tensor
    by_source: Tensor

    @property
    def count(self) -> int:
        return self.source.numel()


def edges_of(mask: Tensor) -> Edges:
    """Return the edges of a (S, N) 0/1 mask."""
    sources, targets = mask.shape
    source, target = mask.nonzero(as_tuple=True)
    order = torch.argsort(target, stable=True)
    source, target = source[order], target[order]
    count = source.numel()
    per_target = torch.bincount(target, minlength=targets)
    per_source = torch.bincount(source, minlength=sources)
    edge_ids = torch.arange(count, device=mask.device)
    return Edges(
        sources=sources,
        targets=targets,
        source=source,
        target=target,
        sum_rows=_row_pointers(torch.cat((per_target, per_target))),
        sum_columns=torch.cat((edge_ids, edge_ids)).to(torch.int32),
        by_source_rows=_row_pointers(per_source),
        by_source_columns=torch.argsort(source, stable=True).to(torch.int32),
        by_source=torch.argsort(source, stable=True),
    )


def _row_pointers(counts: Tensor) -> Tensor:
    pointers = counts.new_zeros(counts.numel() + 1)
    pointers[1:] = counts.cumsum(0)
    return pointers.to(torch.int32)


def _csr(rows: Tensor, columns: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    # NOTE: PyTorch 2.13 warns once that sparse CSR support is in beta. The operations used
    # here, construction and CSR-by-dense products, are covered by the fast-path tests.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(rows, columns, values, shape, check_invariants=False)


@dataclass
class Matrices:
    """The sparse matrices of one set of synapse values (no autograd).

    Attributes:
        sums: (2N, E), rows ``[w E; w]`` (times the sub-step when it is a number).
        sums_t: (E, 2N), its transpose.
        to_source: (S, E), ``sigma`` of each edge in row ``source(e)``.
    """

    sums: Tensor
    sums_t: Tensor
    to_source: Tensor


def matrices_of(edges: Edges, sigma: Tensor, weight: Tensor) -> Matrices:
    """Build the CSR matrices for edge values ``sigma`` (E,) and ``weight`` (E, 2)."""
    count, targets = edges.count, edges.targets
    weight = weight.detach()
    sigma = sigma.detach()
    sums = _csr(edges.sum_rows, edges.sum_columns, weight.t().reshape(-1), (2 * targets, count))
    transpose_rows = torch.arange(0, 2 * count + 1, 2, device=weight.device, dtype=torch.int32)
    transpose_columns = torch.stack((edges.target, edges.target + targets), dim=1)
    transpose_columns = transpose_columns.reshape(-1).to(torch.int32)
    sums_t = _csr(transpose_rows, transpose_columns, weight.reshape(-1), (count, 2 * targets))
    to_source = _csr(
        edges.by_source_rows,
        edges.by_source_columns,
        sigma[edges.by_source],
        (edges.sources, count),
    )
    return Matrices(sums, sums_t, to_source)


def _scaled_matrices(synapses: Synapses, h: float) -> Matrices:
    """Return the synapses' matrices with the weights times the sub-step ``h``."""
    return matrices_of(synapses.edges, synapses.sigma, synapses.weight * h)


@dataclass
class Synapses:
    """Synapse values on an edge list: ``sigma``, ``shift`` (E,) and ``weight`` (E, 2)."""

    edges: Edges
    sigma: Tensor
    shift: Tensor
    weight: Tensor
    matrices: Matrices


def synapses_of(edges: Edges, sigma: Tensor, mu: Tensor, w: Tensor, erev: Tensor) -> Synapses:
    """Gather the edge values from (S, N) parameter matrices (differentiable)."""
    source, target = edges.source, edges.target
    sigma_e = sigma[source, target]
    w_e = w[source, target]
    weight = torch.stack((w_e * erev[source, target], w_e), dim=1)  # (E, 2)
    shift = -(sigma_e * mu[source, target])
    return Synapses(edges, sigma_e, shift, weight, matrices_of(edges, sigma_e, weight))


# ---------------------------------------------------------------------- the synapse sums


def activations(edges: Edges, sigma: Tensor, shift: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Return the activations (E, M) for the sources' values x (S, M), and the gathered x."""
    gathered = x.index_select(0, edges.source)  # (E, M)
    z = torch.mul(gathered, sigma.unsqueeze(1)).add_(shift.unsqueeze(1))
    return z.sigmoid_(), gathered


def sums_backward(
    edges: Edges,
    matrices: Matrices,
    sigma: Tensor,
    shift: Tensor,
    x: Tensor,
    grad_sums: Tensor,
    grads: list[Tensor],
) -> Tensor:
    """Backward of ``R a(x)`` for one block of columns: return d(loss)/dx (S, M).

    ``grad_sums`` (2N, M) is d(loss)/d(sums) with the weights of ``matrices`` applied in the
    forward. Adds the gradients of ``sigma`` (E,), ``shift`` (E,) and the weights (E, 2), the
    last without the weights' scale, to ``grads``.
    """
    activation, gathered = activations(edges, sigma, shift, x)
    columns = x.shape[1]

    # sums = R a:  d(weight) = G a^T on the pattern of R,  d(a) = R^T G.
    per_edge = grad_sums.view(2, edges.targets, columns).index_select(1, edges.target)
    grads[2] += (per_edge * activation).sum(-1).t()  # (2, E, M) -> (E, 2)
    grad_activation = torch.mm(matrices.sums_t, grad_sums)  # (E, M)

    grad_z = torch.ops.aten.sigmoid_backward(grad_activation, activation)
    grads[0] += torch.linalg.vecdot(grad_z, gathered)
    grads[1] += grad_z.sum(1)
    return torch.mm(matrices.to_source, grad_z)  # (S, M)


class SynapseSums(torch.autograd.Function):
    """``base + R a(x)``: the synaptic sums (2N, M) of x (S, M), recomputed in the backward.

    Inputs: ``synapses`` (static edges and matrices), ``x`` (S, M), ``base`` (2N, 1) or
    (2N, M), and the edge values ``sigma``, ``shift`` (E,) and ``weight`` (E, 2) that built
    the matrices. Columns are processed in blocks so that the (E, M) temporaries stay small.
    """

    @staticmethod
    def forward(ctx, synapses, x, base, sigma, shift, weight):
        edges, matrices = synapses.edges, synapses.matrices
        columns = x.shape[1]
        ctx.base_columns = base.shape[1]  # 1 (shared by every column) or M
        base = base.expand(2 * edges.targets, columns)
        if not edges.count or not columns:
            out = base.contiguous()
        else:
            blocks = []
            for start, stop in _blocks(columns, edges.count, _FORWARD_BUDGET):
                activation, _ = activations(edges, sigma, shift, x[:, start:stop])
                blocks.append(torch.addmm(base[:, start:stop], matrices.sums, activation))
            out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
        ctx.synapses = synapses
        ctx.save_for_backward(x, sigma, shift)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, sigma, shift = ctx.saved_tensors
        synapses = ctx.synapses
        edges = synapses.edges
        grad_base = grad_out if ctx.base_columns != 1 else grad_out.sum(1, keepdim=True)
        grads = [torch.zeros_like(sigma), torch.zeros_like(shift), sigma.new_zeros(edges.count, 2)]
        grad_x = torch.zeros_like(x)
        if edges.count:
            for start, stop in _blocks(x.shape[1], edges.count, _BACKWARD_BUDGET):
                grad_x[:, start:stop] = sums_backward(
                    edges,
                    synapses.matrices,
                    sigma,
                    shift,
                    x[:, start:stop],
                    grad_out[:, start:stop].contiguous(),
                    grads,
                )
        return None, grad_x, grad_base, grads[0], grads[1], grads[2]


def _blocks(columns: int, count: int, budget: int) -> list[tuple[int, int]]:
    size = max(_MIN_COLUMNS, budget // max(count, 1))
    return [(start, min(start + size, columns)) for start in range(0, columns, size)]


def synaptic_sums(synapses: Synapses, x: Tensor, base: Tensor) -> Tensor:
    """Return ``base + [n; d]`` (2N, M) for the sources' values x (S, M)."""
    return SynapseSums.apply(synapses, x, base, synapses.sigma, synapses.shift, synapses.weight)


# ---------------------------------------------------------------------- derived parameters


@dataclass
class Derived:
    """The LTC cell's parameters in the layout of the fast loops.

    Attributes:
        recurrent, sensory: the synapses between neurons and from the inputs.
        cm: (N, 1) capacitance; leak: (2N, 1), ``[g_leak v_leak; g_leak]``.
        input_w, input_b: the input mapping's (I,) weight and bias, or None.
    """

    recurrent: Synapses
    sensory: Synapses
    cm: Tensor
    leak: Tensor
    input_w: Tensor | None
    input_b: Tensor | None


def _structure(cell) -> tuple[Edges, Edges]:
    """Return the edges of both synapse matrices (cached; they follow the masks)."""

    def build():
        return edges_of(cell.sparsity_mask), edges_of(cell.sensory_sparsity_mask)

    return _CACHE.get(cell, "structure", build)


def derive(cell, record: bool) -> Derived:
    """Return the cell's parameters in the fast layout, cached when not ``record``-ing."""

    def build() -> Derived:
        recurrent_edges, sensory_edges = _structure(cell)
        gleak = cell.gleak
        return Derived(
            recurrent=synapses_of(recurrent_edges, cell.sigma, cell.mu, cell.w, cell.erev),
            sensory=synapses_of(
                sensory_edges,
                cell.sensory_sigma,
                cell.sensory_mu,
                cell.sensory_w,
                cell.sensory_erev,
            ),
            cm=cell.cm.unsqueeze(-1),
            leak=torch.cat((gleak * cell.vleak, gleak)).unsqueeze(-1),
            input_w=getattr(cell, "input_w", None),
            input_b=getattr(cell, "input_b", None),
        )

    if record:
        return build()
    return _CACHE.get(cell, "derived", build)


def sensory_terms(derived: Derived, x: Tensor) -> Tensor:
    """Return the input-only terms ``[s_n + g_leak v_leak; s_d + g_leak]`` for time-major
    inputs x (T, B, I), as (T, 2N, B)."""
    steps, batch, features = x.shape
    u = x
    if derived.input_w is not None:
        u = u * derived.input_w
    if derived.input_b is not None:
        u = u + derived.input_b
    u = u.reshape(steps * batch, features).t()  # (T, B, I) -> (I, M), M = T B
    terms = synaptic_sums(derived.sensory, u, derived.leak)  # (2N, M)
    return terms.view(terms.shape[0], steps, batch).transpose(0, 1)  # (2N, M) -> (T, 2N, B)


def unfold_base(terms: Tensor, cm: Tensor, h: float | Tensor, epsilon: float) -> Tensor:
    """Return the base ``[h terms_n; C_m + h (terms_d + epsilon)]`` of the fused unfolds.

    ``terms`` is (T, 2N, B) from ``sensory_terms``; ``h`` a float or a (T, 1, B) tensor of
    sub-step lengths. Returns a contiguous (T, 2N, B) tensor.
    """
    units = cm.shape[0]
    capacitance = torch.cat((torch.zeros_like(cm), cm))  # (2N, 1)
    shift = terms.new_zeros(2 * units, 1)
    shift[units:] = epsilon  # epsilon on the denominator
    return ((terms + shift) * h + capacitance).contiguous()


# ---------------------------------------------------------------------- fused solver


class _Unfold:
    """The tensors of the fused unfold, in the shapes its operations want (no autograd).

    ``sums`` contains the weights times the sub-step when that is a number (``h_scale``
    None). With per-sample sub-steps the weights are plain and the sums are scaled per
    column instead.
    """

    def __init__(self, synapses: Synapses, matrices: Matrices, cm: Tensor, batch: int):
        edges = synapses.edges
        self.count, self.units = edges.count, edges.targets
        self.source, self.target = edges.source, edges.target
        self.sigma = synapses.sigma.detach().unsqueeze(1)  # (E, 1)
        self.shift = synapses.shift.detach().unsqueeze(1)
        self.sums, self.sums_t, self.to_source = matrices.sums, matrices.sums_t, matrices.to_source
        self.cm = cm.detach()  # (N, 1)
        self.buffer = cm.new_empty(2 * self.units, batch)  # [P; Q] of one unfold
        self.numerator, self.denominator = self.buffer[: self.units], self.buffer[self.units :]

    def activation(self, v: Tensor) -> Tensor:
        """Return the activations (E, B) for the state v (N, B)."""
        gathered = v.index_select(0, self.source)  # (E, B)
        return gathered.mul_(self.sigma).add_(self.shift).sigmoid_()

    def __call__(self, base: Tensor, v: Tensor, h_scale: Tensor | None, out: Tensor) -> Tensor:
        """Write the state after one unfold from v (N, B) into ``out``; base is (2N, B).

        Leaves ``[P; Q]`` in ``self.buffer``.
        """
        if not self.count:
            self.buffer.copy_(base)
        elif h_scale is None:
            torch.addmm(base, self.sums, self.activation(v), out=self.buffer)
        else:
            torch.mm(self.sums, self.activation(v), out=self.buffer)
            self.buffer.mul_(h_scale).add_(base)
        self.numerator.addcmul_(self.cm, v)  # P = C_m v + ...
        return torch.div(self.numerator, self.denominator, out=out)


class FusedSequence(torch.autograd.Function):
    """The fused-solver time loop as one autograd node; see the module docstring.

    Inputs, in order:

    * ``synapses``, the recurrent synapses (static), ``unfolds`` and ``keep``;
    * ``base`` (T, 2N, B), ``v0`` (N, B) and ``cm`` (N, 1);
    * ``h``, a float or a (T, 1, B) tensor without gradient, and ``mask``, (T, 1, B) of 0/1
      or None;
    * the synapses' ``sigma``, ``shift`` and ``weight``.

    Returns the states (T, N, B) with ``keep``, else the final state (N, B).
    """

    @staticmethod
    def forward(ctx, synapses, unfolds, keep, base, v0, cm, h, mask, sigma, shift, weight):
        steps, _, batch = base.shape
        units = v0.shape[0]
        matrices = _scaled_matrices(synapses, h) if isinstance(h, float) else synapses.matrices
        unfold = _Unfold(synapses, matrices, cm, batch)

        # Saved for the backward: the state entering every unfold and every denominator Q.
        states = base.new_empty(steps + 1, units, batch)
        states[0] = v0
        entering = base.new_empty(steps, unfolds, units, batch)
        denominators = torch.empty_like(entering)
        finals = torch.empty_like(states[1:]) if mask is not None else None  # before the mask
        with step_threads(unfold.count * batch):
            for t in range(steps):
                h_scale = None if isinstance(h, float) else h[t]
                inputs, quotients = entering[t].unbind(0), denominators[t].unbind(0)
                inputs[0].copy_(states[t])
                for u in range(unfolds):
                    if u < unfolds - 1:
                        out = inputs[u + 1]
                    else:
                        out = finals[t] if finals is not None else states[t + 1]
                    unfold(base[t], inputs[u], h_scale, out)
                    quotients[u].copy_(unfold.denominator)
                if mask is not None:
                    torch.where(mask[t] > 0, finals[t], states[t], out=states[t + 1])

        ctx.synapses, ctx.matrices = synapses, matrices
        ctx.unfolds, ctx.keep = unfolds, keep
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
        )
        return states[1:] if keep else states[steps].clone()

    @staticmethod
    def backward(ctx, grad_output):
        states, entering, denominators, finals, mask, h, cm = ctx.saved_tensors
        unfolds = ctx.unfolds
        finals = finals if finals.numel() else None
        mask = mask if mask.numel() else None
        h = ctx.float_h if ctx.float_h is not None else h
        steps, units, batch = states.shape[0] - 1, states.shape[1], states.shape[2]
        unfold = _Unfold(ctx.synapses, ctx.matrices, cm, batch)
        count = unfold.count
        source, target, sigma, shift = unfold.source, unfold.target, unfold.sigma, unfold.shift
        weight = ctx.matrices.sums_t.values().view(count, 2)  # the weights the forward used
        weight_n, weight_d = weight[:, :1].contiguous(), weight[:, 1:].contiguous()  # (E, 1)
        cm = unfold.cm
        sigmoid_backward = torch.ops.aten.sigmoid_backward

        # Accumulators, summed over the batch at the end.
        grad_base = states.new_empty(steps, 2 * units, batch)
        grad_cm = torch.zeros_like(states[0])
        grad_sigma = states.new_zeros(count, batch)
        grad_shift = states.new_zeros(count, batch)
        grad_weight = states.new_zeros(2, count, batch)
        pairs = states.new_empty(unfolds, 2 * units, batch)  # d(loss)/d[P; Q] per unfold
        pair_views = [
            (pair, pair[:units], pair[units:], pair.view(2, units, batch))
            for pair in pairs.unbind(0)
        ]
        zero = states.new_zeros(())

        with step_threads(count * batch):
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
                inputs, quotients = entering[t].unbind(0), denominators[t].unbind(0)
                last = finals[t] if finals is not None else states[t + 1]

                for u in range(unfolds - 1, -1, -1):
                    v = inputs[u]
                    v_next = inputs[u + 1] if u < unfolds - 1 else last
                    pair, grad_p, grad_q, pair_by_kind = pair_views[u]

                    # v_next = P / Q with P = C_m v + ..., Q = ...
                    torch.div(grad_v, quotients[u], out=grad_p)
                    torch.addcmul(zero, grad_p, v_next, value=-1.0, out=grad_q)
                    grad_v = grad_p * cm
                    if not count:
                        continue

                    # The synaptic sums entered P and Q times h: sums = R a, R = [w E; w] by target.
                    if h_scale is not None:
                        pair_by_kind = (pair * h_scale).view(2, units, batch)
                    gathered = v.index_select(0, source)  # (E, B)
                    activation = torch.mul(gathered, sigma).add_(shift).sigmoid_()
                    per_edge = pair_by_kind.index_select(1, target)  # (2, E, B): G at each target
                    grad_weight.addcmul_(per_edge, activation)
                    grad_n, grad_d = per_edge.unbind(0)
                    grad_activation = torch.mul(grad_n, weight_n).addcmul_(grad_d, weight_d)
                    grad_z = sigmoid_backward(grad_activation, activation)
                    grad_sigma.addcmul_(grad_z, gathered)
                    grad_shift.add_(grad_z)
                    grad_v = torch.addmm(grad_v, unfold.to_source, grad_z)

                torch.sum(pairs, dim=0, out=grad_base[t])
                grad_cm += torch.linalg.vecdot(pairs[:, :units], entering[t], dim=0)
                carry = grad_v if carry_direct is None else grad_v + carry_direct

        grad_weight = grad_weight.sum(-1).t()  # (2, E, B) -> (E, 2)
        if ctx.float_h is not None:
            grad_weight = grad_weight * ctx.float_h
        return (
            None,
            None,
            None,
            grad_base,
            carry,
            grad_cm.sum(-1, keepdim=True),
            None,
            None,
            grad_sigma.sum(-1),
            grad_shift.sum(-1),
            grad_weight,
        )


# ---------------------------------------------------------------------- entry points


def _explicit_terms(synapses: Synapses, base: Tensor):
    """Return ``terms(v) -> (numerator, denominator)`` over neuron-major states (N, B)."""
    units = base.shape[0] // 2

    def terms(v: Tensor) -> tuple[Tensor, Tensor]:
        sums = synaptic_sums(synapses, v, base)  # (2N, B)
        return sums[:units], sums[units:]

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
        terms = sensory_terms(derived, x_time)  # (T, 2N, B)
        h = dt_time / unfolds
        base = unfold_base(terms, derived.cm, h, cell.epsilon)
        synapses = derived.recurrent
        result = FusedSequence.apply(
            synapses,
            unfolds,
            keep,
            base,
            v0,
            derived.cm,
            h,
            mask_time,
            synapses.sigma,
            synapses.shift,
            synapses.weight,
        )
        states, last = (result, result[-1]) if keep else (None, result)
    else:
        states, last = _loop(cell, derived, x_time, v0, dt_time, mask_time, keep, chunk, record)

    last = last.t().contiguous()  # (N, B) -> (B, N)
    if states is not None:
        states = states.permute(2, 0, 1).contiguous()  # (T, N, B) -> (B, T, N)
    return states, last


def _loop(cell, derived, x_time, v, dt, mask, keep, chunk, record):
    """Run the step-by-step loop: any supported solver, with or without autograd.

    Used for inference with the fused solver (nothing is kept for a backward) and for the
    Euler and RK4 solvers (autograd records ``SynapseSums`` nodes when ``record``).
    """
    steps = x_time.shape[0]
    fused = _solver_kind(cell.solver) == "fused"
    unfolds = cell.ode_unfolds
    states = []
    if fused:
        with torch.no_grad():
            synapses = derived.recurrent
            float_h = isinstance(dt, float)
            matrices = _scaled_matrices(synapses, dt / unfolds) if float_h else synapses.matrices
            unfold = _Unfold(synapses, matrices, derived.cm, v.shape[1])
    elements = derived.recurrent.edges.count * v.shape[1]
    with torch.set_grad_enabled(record):
        for start in range(0, steps, chunk):
            terms = sensory_terms(derived, x_time[start : start + chunk])  # (K, 2N, B)
            if fused:
                h = dt / unfolds if isinstance(dt, float) else dt[start : start + chunk] / unfolds
                terms = unfold_base(terms, derived.cm, h, cell.epsilon)
            with step_threads(elements):
                for k in range(terms.shape[0]):
                    t = start + k
                    if fused:
                        h_scale = None if float_h else h[k]
                        v_next = _fused_steps(unfold, terms[k], h_scale, v, unfolds)
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


def _fused_steps(unfold: _Unfold, base: Tensor, h_scale, v: Tensor, unfolds: int) -> Tensor:
    """Run the fused unfolds of one step without saving anything; return the new state."""
    spare = [torch.empty_like(v), torch.empty_like(v)]
    for u in range(unfolds):
        v = unfold(base, v, h_scale, spare[u % 2])
    return v


# ---------------------------------------------------------------------- one control step

# The dense single-sample step applies while its matrices stay below this many entries each.
SMALL_STEP_ENTRIES = 1 << 16


@dataclass(eq=False)
class _SmallStep:
    r"""One fused step of a small cell for a single sample, as dense matrix-vector products.

    With ``w = [a; v]``, the activations of the E synapses followed by the state, each unfold
    is four operations:

    .. math::

        a \leftarrow \mathrm{sigmoid}(c + G v), \qquad
        [P; Q] = \mathrm{base} + M w, \qquad v \leftarrow P / Q

    where ``G`` (E, N) holds ``sigma_e`` at (e, source(e)), and ``M`` (2N, E + N) holds
    ``h w_e E_e`` and ``h w_e`` in the rows of ``target(e)`` and ``C_m`` on the diagonal of
    the state block. The sensory synapses are the same products on the input, once per step,
    with the input mapping ``u = w x + b`` folded in: ``G_s u + c_s = (G_s diag(w)) x +
    (G_s b + c_s)``. Dense matrices cost E N operations instead of E, so this form is kept for
    small cells, where it replaces a dozen tiny operations per unfold.
    """

    units: int
    count: int
    sensory_gather: Tensor  # (Es, I), times the input mapping's weight
    sensory_shift: Tensor  # (Es,), plus the gathered input mapping's bias
    sensory_sums: Tensor  # (2N, Es), times h
    base: Tensor  # (2N,): [h g_leak v_leak; C_m + h (g_leak + epsilon)]
    gather: Tensor  # (E, N)
    shift: Tensor  # (E,)
    sums: Tensor  # (2N, E + N)
    unfolds: int


def _small_step(cell, dt: float) -> _SmallStep | None:
    """Build the dense single-sample step for elapsed time ``dt``, or None for a large cell."""
    derived = derive(cell, record=False)
    recurrent, sensory = derived.recurrent, derived.sensory
    units, count = recurrent.edges.targets, recurrent.edges.count
    inputs, sensory_count = sensory.edges.sources, sensory.edges.count
    if max(count * units, 2 * units * (count + units), sensory_count * inputs) > SMALL_STEP_ENTRIES:
        return None
    h = dt / cell.ode_unfolds

    def gather(synapses: Synapses, sources: int) -> Tensor:
        edges = synapses.edges
        matrix = synapses.sigma.new_zeros(edges.count, sources)
        rows = torch.arange(edges.count, device=matrix.device)
        matrix[rows, edges.source] = synapses.sigma
        return matrix

    def sums(synapses: Synapses) -> Tensor:
        edges = synapses.edges
        matrix = synapses.sigma.new_zeros(2 * units, edges.count)
        columns = torch.arange(edges.count, device=matrix.device)
        matrix[edges.target, columns] = synapses.weight[:, 0] * h
        matrix[units + edges.target, columns] = synapses.weight[:, 1] * h
        return matrix

    cm = derived.cm.squeeze(-1)
    leak = derived.leak.squeeze(-1)  # [g_leak v_leak; g_leak]
    base = torch.cat((h * leak[:units], cm + h * (leak[units:] + cell.epsilon)))
    state_block = torch.cat((torch.diag(cm), torch.zeros_like(torch.diag(cm))))  # (2N, N)
    sensory_gather, sensory_shift = gather(sensory, inputs), sensory.shift
    if derived.input_b is not None:
        sensory_shift = sensory_shift + sensory_gather @ derived.input_b
    if derived.input_w is not None:
        sensory_gather = sensory_gather * derived.input_w  # scales column i by w_i
    return _SmallStep(
        units=units,
        count=count,
        sensory_gather=sensory_gather,
        sensory_shift=sensory_shift,
        sensory_sums=sums(sensory),
        base=base,
        gather=gather(recurrent, units),
        shift=recurrent.shift,
        sums=torch.cat((sums(recurrent), state_block), dim=1),
        unfolds=cell.ode_unfolds,
    )


class _SmallWorkspace:
    """The buffers of ``_SmallStep`` with their views, made once per thread."""

    def __init__(self, plan: _SmallStep):
        like, count, units = plan.base, plan.count, plan.units
        self.sensory = like.new_empty(plan.sensory_gather.shape[0])
        self.base = like.new_empty(2 * units)
        self.w = like.new_empty(count + units)  # [a; v]
        self.activation, self.state = self.w[:count], self.w[count:]
        self.pq = like.new_empty(2 * units)
        self.p, self.q = self.pq[:units], self.pq[units:]


def _run_small_step(plan: _SmallStep, space: _SmallWorkspace, x: Tensor, v: Tensor) -> Tensor:
    """Advance one sample: x (I,), v (N,); returns the new state (N,)."""
    torch.addmv(plan.sensory_shift, plan.sensory_gather, x, out=space.sensory).sigmoid_()
    base = torch.addmv(plan.base, plan.sensory_sums, space.sensory, out=space.base)

    w, activation, state = space.w, space.activation, space.state
    pq, p, q = space.pq, space.p, space.q
    gather, shift, sums = plan.gather, plan.shift, plan.sums
    state.copy_(v)
    for _ in range(plan.unfolds):
        torch.addmv(shift, gather, state, out=activation).sigmoid_()
        torch.addmv(base, sums, w, out=pq)
        torch.div(p, q, out=state)
    return state.clone()


def step(cell, x: Tensor, h: Tensor, dt: float | Tensor) -> Tensor:
    """Advance one step without autograd: x (B, I), h (B, N), dt a float or (B, 1).

    The caller ensures that autograd does not record (no gradient is required).
    """
    if x.shape[0] == 1 and type(cell.solver) is Fused:
        value = dt if isinstance(dt, float) else float(dt)
        plan = _CACHE.get(cell, ("small", value), lambda: _small_step(cell, value))
        if plan is not None:
            space = thread_workspace(plan, lambda: _SmallWorkspace(plan))
            return _run_small_step(plan, space, x.view(-1), h.view(-1)).unsqueeze(0)
    dt_time = dt if isinstance(dt, float) else dt.reshape(1, 1, dt.shape[0])  # (B, 1) -> (1, 1, B)
    derived = derive(cell, record=False)
    _, last = _loop(cell, derived, x.unsqueeze(0), h.t(), dt_time, None, False, 1, False)
    return last.t()
