r"""The fast path of the CfC cells: folded weights, one time loop and a hand-written backward.

Both ``CfCCell`` (dense, with a backbone) and ``WiredCfCCell`` (layer by layer) become a
*program*: a list of stages run in order at every time step. Stage ``s`` computes a
pre-activation

.. math::

    p_s = W^x_s u_t + W^h_s y_{t-1} + W^f_s z_{s-1} + b_s

from the input ``u_t``, the previous state ``y_{t-1}`` and the previous stage's output
``z_{s-1}`` (each term optional), then either a backbone activation or a CfC closed form
that writes its neurons of the new state. The stages that read the input or the state form
the *group*: their input terms are computed for all steps before the loop in one matrix
product, and their state terms in one product per step.

The weights are folded so that each step needs few operations:

* ``tanh(x) = 2 sigmoid(2x) - 1``. On CPUs PyTorch's sigmoid is several times faster than its
  tanh, so the rows of ``f_1`` and ``f_2`` (and of a tanh or LeCun-tanh backbone layer) are
  scaled by 2 (by 1.332 for LeCun's ``1.7159 tanh(0.666 x)``) and the kernel applies a
  sigmoid.
* With a number as elapsed time, the gate ``t_a dt + t_b`` is one head: its rows are
  ``dt W_a + W_b``. With a tensor of per-sample times both heads are kept.

The folds are ordinary differentiable tensor operations, so autograd carries gradients from
the folded weights back to the parameters. The time loop itself runs inside
``torch.autograd.Function``: its forward keeps only what the backward needs (each step's
state and stage outputs), and its backward walks the steps in reverse with two or three small
matrix products per step, then computes every weight gradient with one large matrix product
over all steps.

Shapes: B batch, T steps, F input features, N neurons, R_G the group's pre-activation width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._fast import DerivedCache, grad_needed

# LeCun's tanh: 1.7159 tanh(0.666 x) = 3.4318 sigmoid(1.332 x) - 1.7159.
LECUN_SCALE = 1.7159
LECUN_SLOPE = 0.666

# Backbone activations computed as an affine map of a sigmoid: (input scale, output scale,
# output shift), z = output_scale * sigmoid(input_scale * a) + output_shift.
SIGMOID_FORMS = {
    "lecun_tanh": (2.0 * LECUN_SLOPE, 2.0 * LECUN_SCALE, -LECUN_SCALE),
    "tanh": (2.0, 2.0, -1.0),
}
PLAIN_ACTIVATIONS = ("relu", "gelu", "silu")
CLOSED_FORMS = ("default", "no_gate", "pure")

_CACHE = DerivedCache()


@dataclass(frozen=True)
class Stage:
    """One stage of a CfC program (static description; the tensors live in ``Program``).

    Attributes:
        kind: a backbone activation ("lecun_tanh", "tanh", "relu", "gelu", "silu") or a
            closed form ("default", "no_gate", "pure").
        rows: width of the pre-activation ``p``.
        width: width of the output ``z`` (``rows`` for an activation, H for a closed form).
        group_offset: first column of its pre-activation in the group block, or None when the
            stage reads only the previous stage's output.
        fresh: whether it reads the previous stage's output.
        state_offset: for a closed form, the first internal state index that it writes.
    """

    kind: str
    rows: int
    width: int
    group_offset: int | None
    fresh: bool
    state_offset: int | None

    @property
    def closed_form(self) -> bool:
        return self.kind in CLOSED_FORMS


@dataclass
class Program:
    """A CfC cell as stages plus folded weights, for one elapsed-time layout.

    Attributes:
        stages: the stages in execution order.
        per_sample_gate: closed forms keep separate ``t_a`` and ``t_b`` rows (tensor dt).
        order: internal state position -> neuron id, or None when they coincide.
        input_weight: (R_G, F) input weights of the group.
        input_bias: (R_G,) biases of the group.
        state_weight: (R_G, N) state weights of the group, columns in internal order.
        fresh_weights: per stage, (rows, width of the previous stage) or None.
        biases: per stage outside the group, (rows,); None inside the group.
        pure: per "pure" stage, ``(|w_tau|, A)``, each (H,); None otherwise.
    """

    stages: tuple[Stage, ...]
    per_sample_gate: bool
    order: Tensor | None
    input_weight: Tensor
    input_bias: Tensor
    state_weight: Tensor
    fresh_weights: list[Tensor | None]
    biases: list[Tensor | None]
    pure: list[tuple[Tensor, Tensor] | None]

    def flat_tensors(self) -> list[Tensor]:
        """Return the tensors the loop reads, in the order ``unflatten`` expects."""
        tensors = [self.state_weight]
        tensors += [w for w in self.fresh_weights if w is not None]
        tensors += [b for b in self.biases if b is not None]
        for pair in self.pure:
            if pair is not None:
                tensors += list(pair)
        return tensors


@dataclass
class _LoopWeights:
    """Per-stage tensors laid out for the loop: transposed weights and the closed-form data."""

    state_t: Tensor  # (N, R_G)
    state: Tensor  # (R_G, N)
    fresh_t: list[Tensor | None]  # (width_prev, rows)
    fresh: list[Tensor | None]  # (rows, width_prev)
    biases: list[Tensor | None]
    pure: list[tuple[Tensor, Tensor] | None]


def _loop_weights(stages: tuple[Stage, ...], tensors: list[Tensor]) -> _LoopWeights:
    """Split ``Program.flat_tensors()`` back into per-stage lists."""
    position = 0
    state = tensors[position]
    position += 1
    fresh: list[Tensor | None] = []
    for stage in stages:
        fresh.append(tensors[position] if stage.fresh else None)
        position += stage.fresh
    biases: list[Tensor | None] = []
    for stage in stages:
        outside = stage.group_offset is None
        biases.append(tensors[position] if outside else None)
        position += outside
    pure: list[tuple[Tensor, Tensor] | None] = []
    for stage in stages:
        if stage.kind == "pure":
            pure.append((tensors[position], tensors[position + 1]))
            position += 2
        else:
            pure.append(None)
    return _LoopWeights(
        state_t=state.t(),
        state=state,
        fresh_t=[w.t() if w is not None else None for w in fresh],
        fresh=fresh,
        biases=biases,
        pure=pure,
    )


# ---------------------------------------------------------------------- building programs


def _fold_heads(weight: Tensor, bias: Tensor, mode: str, dt: float | None):
    """Fold the heads ``[f_1, f_2, t_a, t_b]`` for the kernel; see the module docstring.

    Returns (weight, bias) with rows ``[2 f_1, 2 f_2, dt t_a + t_b]`` for a number ``dt``,
    ``[2 f_1, 2 f_2, t_a, t_b]`` for ``dt=None`` (per-sample times), and unchanged for "pure".
    """
    if mode == "pure":
        return weight, bias
    f1, f2, t_a, t_b = weight.chunk(4, dim=0)  # each (H, width)
    c1, c2, c_a, c_b = bias.chunk(4, dim=0)  # each (H,)
    if dt is None:
        return (
            torch.cat([2.0 * f1, 2.0 * f2, t_a, t_b], dim=0),
            torch.cat([2.0 * c1, 2.0 * c2, c_a, c_b], dim=0),
        )
    return (
        torch.cat([2.0 * f1, 2.0 * f2, dt * t_a + t_b], dim=0),
        torch.cat([2.0 * c1, 2.0 * c2, dt * c_a + c_b], dim=0),
    )


def _closed_form_rows(mode: str, hidden: int, per_sample_gate: bool) -> int:
    if mode == "pure":
        return hidden
    return 4 * hidden if per_sample_gate else 3 * hidden


def dense_program(cell, dt: float | None) -> Program:
    """Build the program of a dense ``CfCCell``; ``dt=None`` for per-sample elapsed times."""
    inputs, hidden = cell.input_size, cell.hidden_size
    linears = [m for m in cell.backbone if isinstance(m, torch.nn.Linear)]
    activation = cell.backbone_activation
    scale = SIGMOID_FORMS[activation][0] if activation in SIGMOID_FORMS else 1.0
    per_sample_gate = dt is None and cell.mode != "pure"

    stages: list[Stage] = []
    fresh_weights: list[Tensor | None] = []
    biases: list[Tensor | None] = []
    pure: list[tuple[Tensor, Tensor] | None] = []

    heads_weight, heads_bias = _fold_heads(cell.heads.weight, cell.heads.bias, cell.mode, dt)
    heads_rows = _closed_form_rows(cell.mode, hidden, per_sample_gate)
    pure_pair = (cell.w_tau.abs(), cell.A) if cell.mode == "pure" else None

    if linears:
        first = linears[0]
        group_weight = scale * first.weight  # (U, I + H)
        group_bias = scale * first.bias
        width = first.out_features
        stages.append(Stage(activation, width, width, 0, False, None))
        fresh_weights.append(None)
        biases.append(None)
        pure.append(None)
        for linear in linears[1:]:
            width = linear.out_features
            stages.append(Stage(activation, width, width, None, True, None))
            fresh_weights.append(scale * linear.weight)
            biases.append(scale * linear.bias)
            pure.append(None)
        stages.append(Stage(cell.mode, heads_rows, hidden, None, True, 0))
        fresh_weights.append(heads_weight)
        biases.append(heads_bias)
        pure.append(pure_pair)
    else:
        group_weight, group_bias = heads_weight, heads_bias  # (rows, I + H)
        stages.append(Stage(cell.mode, heads_rows, hidden, 0, False, 0))
        fresh_weights.append(None)
        biases.append(None)
        pure.append(pure_pair)

    return Program(
        stages=tuple(stages),
        per_sample_gate=per_sample_gate,
        order=None,
        input_weight=group_weight[:, :inputs],
        input_bias=group_bias,
        state_weight=group_weight[:, inputs:],
        fresh_weights=fresh_weights,
        biases=biases,
        pure=pure,
    )


def wired_program(cell, dt: float | None) -> Program:
    """Build the program of a ``WiredCfCCell``; every wiring layer is a closed-form stage."""
    layers = list(cell.layers)
    units, inputs = cell.state_size, cell.sensory_size
    per_sample_gate = dt is None and cell.mode != "pure"

    # Internal state order: the neuron ids when every layer is a contiguous run of ids (true
    # for NCP wirings), so stage outputs are slices of the state; otherwise layer order.
    ids = [layer.neuron_ids for layer in layers]
    contiguous = all(
        bool(torch.equal(i, torch.arange(int(i[0]), int(i[0]) + len(i), device=i.device)))
        for i in ids
    )
    if contiguous:
        order = None
        position = torch.arange(units, device=ids[0].device)
        offsets = [int(i[0]) for i in ids]
    else:
        order = torch.cat(ids)
        position = torch.empty_like(order)
        position[order] = torch.arange(units, device=order.device)
        offsets, start = [], 0
        for i in ids:
            offsets.append(start)
            start += len(i)

    stages: list[Stage] = []
    fresh_weights: list[Tensor | None] = []
    input_weights, input_biases, state_weights = [], [], []
    pure: list[tuple[Tensor, Tensor] | None] = []
    group_offset = 0
    previous_width = 0
    for layer, offset in zip(layers, offsets):
        hidden = layer.size
        n_x, n_fresh, _ = layer.splits
        weight, bias = _fold_heads(layer.masked_weight(), layer.bias, layer.mode, dt)
        rows = weight.shape[0]

        # Scatter the layer's source columns into full-width matrices.
        input_weight = weight.new_zeros(rows, inputs)
        if n_x:
            input_weight = input_weight.index_add(1, layer.x_sources, weight[:, :n_x])
        state_weight = weight.new_zeros(rows, units).index_add(
            1, position[layer.state_sources], weight[:, n_x + n_fresh :]
        )
        fresh_weight = None
        if n_fresh:
            fresh_weight = weight.new_zeros(rows, previous_width).index_add(
                1, layer.fresh_sources, weight[:, n_x : n_x + n_fresh]
            )

        stages.append(Stage(layer.mode, rows, hidden, group_offset, n_fresh > 0, offset))
        input_weights.append(input_weight)
        input_biases.append(bias)
        state_weights.append(state_weight)
        fresh_weights.append(fresh_weight)
        pure.append((layer.w_tau.abs(), layer.A) if layer.mode == "pure" else None)
        group_offset += rows
        previous_width = hidden

    return Program(
        stages=tuple(stages),
        per_sample_gate=per_sample_gate,
        order=order,
        input_weight=torch.cat(input_weights, dim=0),
        input_bias=torch.cat(input_biases, dim=0),
        state_weight=torch.cat(state_weights, dim=0),
        fresh_weights=fresh_weights,
        biases=[None] * len(stages),
        pure=pure,
    )


@dataclass
class Prepared:
    """A program with the derived tensors its loops use, cached for inference."""

    program: Program
    loop: _LoopWeights
    input_t: Tensor  # (F, R_G)
    inverse: Tensor | None  # neuron id -> internal position
    constants: dict[str, Tensor]


def prepare(cell, dt: float | None, record: bool) -> Prepared:
    """Return the cell's program for elapsed time ``dt`` (None: per-sample times).

    With ``record`` the folds are recorded by autograd and rebuilt on every call; without it
    the result is cached until a parameter changes.
    """

    def build() -> Prepared:
        program = (wired_program if hasattr(cell, "layers") else dense_program)(cell, dt)
        return Prepared(
            program,
            _loop_weights(program.stages, program.flat_tensors()),
            program.input_weight.t(),
            _inverse(program.order) if program.order is not None else None,
            constants_like(program.input_weight),
        )

    if record:
        return build()
    with torch.no_grad():
        return _CACHE.get(cell, dt, build)


def supports_fast_path(cell) -> bool:
    """Return False where only the reference applies: dropout that is active."""
    dropout = getattr(cell, "backbone_dropout", 0.0)
    return not (cell.training and dropout > 0.0)


# ---------------------------------------------------------------------- one step, forward


def saved_widths(stage: Stage) -> list[int]:
    """Return the widths of the (B, width) tensors that the backward needs from a stage.

    Sigmoid-form activations keep their sigmoid, the other activations their pre-activation,
    "default" and "no_gate" the sigmoids of ``[2 f_1, 2 f_2, gate]``, "pure" ``f_1`` and its
    decay factor.
    """
    if stage.kind in SIGMOID_FORMS or stage.kind in PLAIN_ACTIVATIONS:
        return [stage.rows]
    if stage.kind == "pure":
        return [stage.width, stage.width]
    return [3 * stage.width]


def _stage_forward(
    stage: Stage,
    pre: Tensor,
    dt: float | Tensor,
    pure: tuple[Tensor, Tensor] | None,
    constants: dict[str, Tensor],
    out: Tensor | None,
    saved: list[Tensor] | None,
) -> Tensor:
    """Run one stage on its pre-activation (B, rows) and return its output (B, width).

    ``out`` receives a closed form's output (a slice of the new state). ``saved``, when given,
    are (B, ...) destinations for the tensors listed by ``saved_widths``.
    """
    kind = stage.kind
    if kind in SIGMOID_FORMS:
        _, output_scale, _ = SIGMOID_FORMS[kind]
        s = torch.sigmoid(pre, out=saved[0]) if saved else torch.sigmoid(pre)
        return torch.add(constants[kind], s, alpha=output_scale)  # a scaled tanh
    if kind in PLAIN_ACTIVATIONS:
        if saved:
            saved[0].copy_(pre)
        if kind == "relu":
            return torch.relu(pre)
        return F.gelu(pre) if kind == "gelu" else F.silu(pre)

    hidden = stage.width
    if kind == "pure":
        magnitude, amplitude = pure
        if saved:
            saved[0].copy_(pre)
        decay = torch.add(pre.abs(), magnitude)  # |f_1| + |w_tau|
        decay = torch.exp(decay.mul_(-dt), out=saved[1] if saved else None)
        # A - A e f_1
        return torch.addcmul(amplitude, amplitude * decay, pre, value=-1.0, out=out)

    s = saved[0] if saved else torch.empty_like(pre[:, : 3 * hidden])
    if stage.rows == 4 * hidden:  # per-sample times: the gate is t_a dt + t_b
        torch.sigmoid(pre[:, : 2 * hidden], out=s[:, : 2 * hidden])
        gate = torch.addcmul(pre[:, 3 * hidden :], pre[:, 2 * hidden : 3 * hidden], dt)
        torch.sigmoid(gate, out=s[:, 2 * hidden :])
    else:
        torch.sigmoid(pre, out=s)  # (B, 3H): sigmoid(2 f_1), sigmoid(2 f_2), gate
    tanh_f = torch.add(constants["closed_form"], s[:, : 2 * hidden], alpha=2.0)  # tanh f_1, f_2
    gate = s[:, 2 * hidden :]
    if kind == "default":
        return torch.lerp(tanh_f[:, :hidden], tanh_f[:, hidden:], gate, out=out)
    return torch.addcmul(tanh_f[:, :hidden], gate, tanh_f[:, hidden:], out=out)


def _step(
    stages: tuple[Stage, ...],
    weights: _LoopWeights,
    px: Tensor,
    y: Tensor,
    dt: float | Tensor,
    constants: dict[str, Tensor],
    new_state: Tensor,
    base_out: Tensor | None = None,
    saved: list[list[Tensor]] | None = None,
) -> None:
    """Advance one step: write the new state into ``new_state`` (B, N).

    ``px`` (B, R_G) is the group's input term plus bias. ``base_out``, when given, receives the
    group's pre-activations; ``saved[s]`` are stage ``s``'s destinations for the backward.
    """
    base = torch.addmm(px, y, weights.state_t, out=base_out)  # (B, R_G)
    z = None
    for index, stage in enumerate(stages):
        if stage.group_offset is not None:
            pre = base[:, stage.group_offset : stage.group_offset + stage.rows]
            if stage.fresh:
                pre = torch.addmm(pre, z, weights.fresh_t[index])
        else:
            pre = torch.addmm(weights.biases[index], z, weights.fresh_t[index])
        out = None
        if stage.closed_form:
            out = new_state[:, stage.state_offset : stage.state_offset + stage.width]
        z = _stage_forward(
            stage,
            pre,
            dt,
            weights.pure[index],
            constants,
            out,
            saved[index] if saved is not None else None,
        )


def constants_like(like: Tensor) -> dict[str, Tensor]:
    """Return the 0-d shift constants of the sigmoid forms, in ``like``'s dtype and device."""
    constants = {name: like.new_full((), shift) for name, (_, _, shift) in SIGMOID_FORMS.items()}
    constants["closed_form"] = like.new_full((), -1.0)  # tanh = 2 sigmoid(2x) - 1
    return constants


# ---------------------------------------------------------------------- one step, backward


def _stage_backward(
    stage: Stage,
    grad: Tensor,
    saved: list[Tensor],
    dt: float | Tensor,
    pure: tuple[Tensor, Tensor] | None,
    grad_pre: Tensor,
    pure_grads: list[Tensor] | None,
) -> None:
    """Write d(loss)/d(pre-activation) into ``grad_pre`` (B, rows), given d(loss)/d(output).

    ``pure_grads`` accumulates the (B, H) gradients of ``|w_tau|`` and ``A``.
    """
    kind = stage.kind
    if kind in SIGMOID_FORMS:
        _, output_scale, _ = SIGMOID_FORMS[kind]
        torch.ops.aten.sigmoid_backward.grad_input(
            grad * output_scale, saved[0], grad_input=grad_pre
        )
        return
    if kind == "relu":
        torch.ops.aten.threshold_backward.grad_input(grad, saved[0], 0.0, grad_input=grad_pre)
        return
    if kind == "gelu":
        grad_pre.copy_(torch.ops.aten.gelu_backward(grad, saved[0]))
        return
    if kind == "silu":
        grad_pre.copy_(torch.ops.aten.silu_backward(grad, saved[0]))
        return

    hidden = stage.width
    if kind == "pure":
        f1, decay = saved
        magnitude, amplitude = pure
        # d/df_1 of A - A e f_1, with e = exp(-dt (|w| + |f_1|)): -A e (1 - dt |f_1|).
        torch.mul(f1.abs(), -dt, out=grad_pre).add_(1.0).mul_(decay).mul_(amplitude)
        grad_pre.mul_(grad).neg_()
        # d/dA = 1 - e f_1 and d/d|w| = A e f_1 dt.
        e_f = decay * f1
        pure_grads[1].addcmul_(grad, 1.0 - e_f)
        pure_grads[0].addcmul_(grad, e_f * amplitude * dt)
        return

    s = saved[0]  # (B, 3H): sigmoid(2 f_1), sigmoid(2 f_2), gate
    s1, s2, gate = s[:, :hidden], s[:, hidden : 2 * hidden], s[:, 2 * hidden :]
    upstream = torch.empty_like(s)  # d(loss)/d(s)
    twice = grad * 2.0
    if kind == "default":
        # h = t1 (1 - g) + t2 g with t = 2 s - 1.
        torch.mul(twice, gate, out=upstream[:, hidden : 2 * hidden])
        torch.sub(twice, upstream[:, hidden : 2 * hidden], out=upstream[:, :hidden])
        torch.sub(s2, s1, out=upstream[:, 2 * hidden :]).mul_(twice)
    else:
        # h = t1 + g t2.
        upstream[:, :hidden] = twice
        torch.mul(twice, gate, out=upstream[:, hidden : 2 * hidden])
        torch.mul(s2, 2.0, out=upstream[:, 2 * hidden :]).sub_(1.0).mul_(grad)
    if stage.rows == 4 * hidden:  # per-sample times: gate = sigmoid(t_a dt + t_b)
        torch.ops.aten.sigmoid_backward.grad_input(
            upstream[:, : 2 * hidden], s[:, : 2 * hidden], grad_input=grad_pre[:, : 2 * hidden]
        )
        gate_grad = grad_pre[:, 3 * hidden :]
        torch.ops.aten.sigmoid_backward.grad_input(
            upstream[:, 2 * hidden :], gate, grad_input=gate_grad
        )
        torch.mul(gate_grad, dt, out=grad_pre[:, 2 * hidden : 3 * hidden])
    else:
        torch.ops.aten.sigmoid_backward.grad_input(upstream, s, grad_input=grad_pre)


# ---------------------------------------------------------------------- the sequence


def _dt_at(dt: float | Tensor, t: int) -> float | Tensor:
    return dt if isinstance(dt, float) else dt[t]


class CfCSequence(torch.autograd.Function):
    """The CfC time loop as one autograd node; see the module docstring.

    Inputs: the static ``stages``, ``keep`` (return every state, else only the last), ``px``
    (T, B, R_G), ``y0`` (B, N), ``dt`` (a float or a (T, B, 1) tensor without gradient),
    ``mask`` ((T, B, 1) of 0/1 or None), a dict of 0-d constants, and the program's flat
    tensors. Returns the states (T, B, N) with ``keep``, else the final state (B, N).
    """

    @staticmethod
    def forward(ctx, stages, keep, px, y0, dt, mask, constants, *tensors):
        steps, batch, _ = px.shape
        weights = _loop_weights(stages, list(tensors))

        # What the backward needs: every state, the group's pre-activations and each stage's
        # saved tensors, all for every step.
        states = px.new_empty(steps + 1, batch, y0.shape[1])  # y_0 .. y_T
        states[0] = y0
        bases = torch.empty_like(px)
        saved = [[px.new_empty(steps, batch, w) for w in saved_widths(s)] for s in stages]

        for t in range(steps):
            new_state = states[t + 1]
            step_saved = [[buffer[t] for buffer in stage_saved] for stage_saved in saved]
            _step(
                stages, weights, px[t], states[t], _dt_at(dt, t), constants, new_state,
                bases[t], step_saved,
            )
            if mask is not None:
                torch.where(mask[t] > 0, new_state, states[t], out=new_state)

        ctx.stages = stages
        ctx.keep = keep
        ctx.float_dt = dt if isinstance(dt, float) else None
        ctx.counts = (len(tensors), [len(stage_saved) for stage_saved in saved])
        extras = [mask if mask is not None else px.new_empty(0)]
        extras.append(dt if isinstance(dt, Tensor) else px.new_empty(0))
        flat_saved = [buffer for stage_saved in saved for buffer in stage_saved]
        ctx.save_for_backward(states, *extras, *tensors, *flat_saved)
        return states[1:] if keep else states[steps].clone()

    @staticmethod
    def backward(ctx, grad_output):
        stages = ctx.stages
        states, mask, dt, *rest = ctx.saved_tensors
        mask = mask if mask.numel() else None
        dt = ctx.float_dt if ctx.float_dt is not None else dt
        tensor_count, saved_counts = ctx.counts
        weights = _loop_weights(stages, rest[:tensor_count])
        saved, start = [], tensor_count
        for count in saved_counts:
            saved.append(rest[start : start + count])
            start += count

        steps, batch, units = states.shape
        steps -= 1
        grad_bases = states.new_empty(steps, batch, weights.state.shape[0])
        grad_outside = [
            states.new_empty(steps, batch, stage.rows) if stage.group_offset is None else None
            for stage in stages
        ]
        pure_grads = [
            [states.new_zeros(batch, stage.width), states.new_zeros(batch, stage.width)]
            if stage.kind == "pure"
            else None
            for stage in stages
        ]

        carry = torch.zeros_like(states[0])  # d(loss)/d(y_t) through later steps
        for t in range(steps - 1, -1, -1):
            if ctx.keep:
                grad_state = carry + grad_output[t]
            elif t == steps - 1:
                grad_state = carry + grad_output
            else:
                grad_state = carry
            carry_direct = None
            if mask is not None:  # y_t = m y_new + (1 - m) y_{t-1}
                carry_direct = grad_state * (1.0 - mask[t])
                grad_state = grad_state * mask[t]

            grad_fresh = None  # d(loss)/d(output of the stage before), from a fresh read
            for index in range(len(stages) - 1, -1, -1):
                stage = stages[index]
                grad_out = grad_fresh
                if stage.closed_form:
                    offset = stage.state_offset
                    grad_out = grad_state[:, offset : offset + stage.width]
                    if grad_fresh is not None:
                        grad_out = grad_out + grad_fresh
                grad_pre = _grad_pre_of(stage, index, grad_bases, grad_outside)[t]
                _stage_backward(
                    stage,
                    grad_out,
                    [buffer[t] for buffer in saved[index]],
                    _dt_at(dt, t),
                    weights.pure[index],
                    grad_pre,
                    pure_grads[index],
                )
                grad_fresh = grad_pre @ weights.fresh[index] if stage.fresh else None

            carry = grad_bases[t] @ weights.state  # (B, N)
            if carry_direct is not None:
                carry += carry_direct

        # Weight gradients: one matrix product over all steps each.
        flat = steps * batch
        grads = [grad_bases.reshape(flat, -1).t() @ states[:-1].reshape(flat, units)]
        outputs = _stage_outputs(stages, saved, states)
        for index, stage in enumerate(stages):
            if stage.fresh:
                grad_pre = _grad_pre_of(stage, index, grad_bases, grad_outside)
                grads.append(grad_pre.reshape(flat, -1).t() @ outputs[index - 1].reshape(flat, -1))
        for index, stage in enumerate(stages):
            if stage.group_offset is None:
                grads.append(grad_outside[index].sum(dim=(0, 1)))
        for index, stage in enumerate(stages):
            if stage.kind == "pure":
                grads += [pure_grads[index][0].sum(0), pure_grads[index][1].sum(0)]

        return (None, None, grad_bases, carry, None, None, None, *grads)


def _grad_pre_of(stage: Stage, index: int, grad_bases: Tensor, grad_outside: list) -> Tensor:
    """Return the (T, B, rows) buffer of a stage's pre-activation gradients."""
    if stage.group_offset is None:
        return grad_outside[index]
    return grad_bases[:, :, stage.group_offset : stage.group_offset + stage.rows]


def _stage_outputs(stages, saved, states) -> list[Tensor]:
    """Return every stage's output at every step, (T, B, width), for the weight gradients."""
    outputs = []
    for stage, stage_saved in zip(stages, saved):
        kind = stage.kind
        if kind in SIGMOID_FORMS:
            _, output_scale, shift = SIGMOID_FORMS[kind]
            outputs.append(stage_saved[0] * output_scale + shift)
        elif kind == "relu":
            outputs.append(torch.relu(stage_saved[0]))
        elif kind == "gelu":
            outputs.append(F.gelu(stage_saved[0]))
        elif kind == "silu":
            outputs.append(F.silu(stage_saved[0]))
        else:
            # A closed form's output is its slice of the state. On a masked step the state
            # kept its old value, but the gradient that reaches the stages there is zero.
            offset = stage.state_offset
            outputs.append(states[1:, :, offset : offset + stage.width])
    return outputs


# ---------------------------------------------------------------------- entry points


def _inverse(order: Tensor) -> Tensor:
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return inverse


def run_sequence(
    cell,
    x: Tensor,
    h0: Tensor,
    dt: float | Tensor,
    mask: Tensor | None,
    keep: bool,
    chunk: int,
) -> tuple[Tensor | None, Tensor]:
    """Run a CfC cell over a batch-first sequence with the fast path.

    Args:
        x: (B, T, F) input; h0: (B, N) initial state in neuron-id order.
        dt: a float or a (B, T, 1) tensor that does not require grad.
        mask: (B, T) bool or None; False keeps the state.
        keep: return every state (B, T, N); otherwise only the final one.
        chunk: steps whose input terms are computed together when autograd does not record.

    Returns:
        (states or None, h_T), in neuron-id order.
    """
    record = grad_needed(cell, x, h0)
    prepared = prepare(cell, dt if isinstance(dt, float) else None, record)
    program, order = prepared.program, prepared.program.order
    y0 = h0 if order is None else h0.index_select(1, order)
    x_time = x.transpose(0, 1)  # (B, T, F) -> (T, B, F)
    dt_time = dt if isinstance(dt, float) else dt.transpose(0, 1)  # float or (T, B, 1)
    mask_time = None
    if mask is not None:
        mask_time = mask.transpose(0, 1).unsqueeze(-1).to(x.dtype)  # (B, T) -> (T, B, 1)
    constants = prepared.constants

    if record:
        px = F.linear(x_time, program.input_weight, program.input_bias)  # (T, B, R_G)
        result = CfCSequence.apply(
            program.stages, keep, px, y0, dt_time, mask_time, constants, *program.flat_tensors()
        )
        states, last = (result, result[-1]) if keep else (None, result)
    else:
        states, last = _inference(prepared, x_time, y0, dt_time, mask_time, keep, chunk)

    if order is not None:
        inverse = prepared.inverse
        last = last.index_select(1, inverse)
        states = states.index_select(2, inverse) if states is not None else None
    if states is not None:
        states = states.transpose(0, 1).contiguous()  # (T, B, N) -> (B, T, N)
    return states, last


def _inference(prepared: Prepared, x_time, y0, dt, mask, keep: bool, chunk: int):
    """The loop without autograd: input terms per chunk of steps, and no per-step tensors
    kept beyond the states that the caller asked for."""
    program = prepared.program
    steps, batch, _ = x_time.shape
    with torch.no_grad():
        states = x_time.new_empty(steps, batch, y0.shape[1]) if keep else None
        spare = [torch.empty_like(y0), torch.empty_like(y0)]
        y = y0
        for start in range(0, steps, chunk):
            px = F.linear(x_time[start : start + chunk], program.input_weight, program.input_bias)
            for k in range(px.shape[0]):
                t = start + k
                new_state = states[t] if keep else spare[t % 2]
                _step(
                    program.stages, prepared.loop, px[k], y, _dt_at(dt, t), prepared.constants,
                    new_state,
                )
                if mask is not None:
                    torch.where(mask[t] > 0, new_state, y, out=new_state)
                y = new_state
    return states, (y if keep else y.clone())


def step(cell, x: Tensor, h: Tensor, dt: float | Tensor) -> Tensor:
    """Advance one step without autograd: x (B, F), h (B, N), dt a float or (B, 1)."""
    prepared = prepare(cell, dt if isinstance(dt, float) else None, record=False)
    program = prepared.program
    with torch.no_grad():
        y = h if program.order is None else h.index_select(1, program.order)
        px = torch.addmm(program.input_bias, x, prepared.input_t)
        new_state = torch.empty_like(y)
        _step(program.stages, prepared.loop, px, y, dt, prepared.constants, new_state)
        if program.order is not None:
            new_state = new_state.index_select(1, prepared.inverse)
    return new_state
