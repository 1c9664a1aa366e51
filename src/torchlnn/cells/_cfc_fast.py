r"""The fast path of the CfC cells: folded weights, one time loop and a hand-written backward.

Both ``CfCCell`` (dense, with a backbone) and ``WiredCfCCell`` (layer by layer) become a
*program*: a list of stages run in order at every time step. Stage ``s`` computes a
pre-activation

.. math::

    p_s = W^x_s u_t + b_s + W^h_s y_{t-1}[c_s] + W^f_s z_{s-1}

from the input ``u_t``, a block ``c_s`` of the previous state ``y_{t-1}`` and the previous
stage's output ``z_{s-1}`` (each term optional), then either applies a backbone activation
or a CfC closed form that writes its neurons of the new state. The input terms of all steps
are computed before the loop, in one matrix product per stage.

The weights are folded so that each step needs few operations:

* ``tanh(x) = 2 sigmoid(2x) - 1``. On CPUs PyTorch's sigmoid is several times faster than its
  tanh. So the rows of ``f_1`` and ``f_2``, and of a tanh or LeCun-tanh backbone layer, are
  scaled by 2 (by 1.332 for LeCun's ``1.7159 tanh(0.666 x)``), and the kernel applies a
  sigmoid.
* With a number as elapsed time, the gate ``t_a dt + t_b`` is one head: its rows are
  ``dt W_a + W_b``. With a tensor of per-sample times both heads are kept.
* A wiring layer reads only the block of the state that holds its sources when they are
  contiguous (for an NCP, its own neurons), not the whole state.

The folds are ordinary differentiable tensor operations, so autograd carries gradients from
the folded weights back to the parameters. The time loop runs inside
``torch.autograd.Function``: its forward keeps what the backward needs (each step's state and
each stage's pre-activation or sigmoid), and its backward walks the steps in reverse with one
or two small matrix products per stage, then computes every weight gradient with one large
matrix product over all steps. Every per-step view is sliced once before the loop, because in
a loop of microsecond operations the Python cost of slicing matters.

Shapes: B batch, T steps, F input features, N neurons.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._fast import (
    FAST_PATHS_SUPPORTED,
    DerivedCache,
    grad_needed,
    step_threads,
    thread_workspace,
)

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


# ---------------------------------------------------------------------- programs


@dataclass(frozen=True)
class Stage:
    """One stage of a CfC program (static; the tensors live in ``Program``).

    Attributes:
        kind: a backbone activation ("lecun_tanh", "tanh", "relu", "gelu", "silu") or a
            closed form ("default", "no_gate", "pure").
        rows: width of the pre-activation ``p``. A closed form has ``[2 f_1, 2 f_2, gate]``
            (3H), ``[2 f_1, 2 f_2, t_a, t_b]`` (4H, per-sample times) or ``f_1`` (H, "pure").
        width: width of the output ``z`` (``rows`` for an activation, H for a closed form).
        reads_input: whether ``p`` has an input term (computed before the loop).
        state_columns: the ``(start, stop)`` block of the state it reads, or None.
        fresh: whether it reads the previous stage's output.
        state_offset: for a closed form, the first internal state index that it writes.
    """

    kind: str
    rows: int
    width: int
    reads_input: bool
    state_columns: tuple[int, int] | None
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
        order: internal state position -> neuron id, or None when they coincide.
        input_weights: per stage, (rows, F) or None.
        biases: per stage, (rows,).
        state_weights: per stage, (rows, stop - start) or None.
        fresh_weights: per stage, (rows, width of the previous stage) or None.
        pure: per "pure" stage, ``(|w_tau|, A)``, each (H,); None otherwise.
    """

    stages: tuple[Stage, ...]
    order: Tensor | None
    input_weights: list[Tensor | None]
    biases: list[Tensor]
    state_weights: list[Tensor | None]
    fresh_weights: list[Tensor | None]
    pure: list[tuple[Tensor, Tensor] | None]

    def loop_tensors(self) -> list[Tensor]:
        """Return the tensors the loop reads besides the input terms, in ``Weights`` order."""
        tensors = [w for w in self.state_weights if w is not None]
        tensors += [w for w in self.fresh_weights if w is not None]
        tensors += [b for b, s in zip(self.biases, self.stages) if not s.reads_input]
        for pair in self.pure:
            if pair is not None:
                tensors += list(pair)
        return tensors

    def input_terms(self, x_time: Tensor) -> list[Tensor]:
        """Return ``W^x_s u + b_s`` for every stage that reads the input, (T, B, rows)."""
        return [
            F.linear(x_time, weight, bias)
            for weight, bias in zip(self.input_weights, self.biases)
            if weight is not None
        ]


@dataclass
class Weights:
    """``Program.loop_tensors()`` split per stage, with the transposes the loop multiplies by."""

    state: list[Tensor | None]  # (rows, width)
    state_t: list[Tensor | None]  # (width, rows)
    fresh: list[Tensor | None]
    fresh_t: list[Tensor | None]
    biases: list[Tensor | None]  # stages without an input term
    pure: list[tuple[Tensor, Tensor] | None]


def split_tensors(stages: tuple[Stage, ...], tensors: list[Tensor]) -> Weights:
    """Split ``Program.loop_tensors()`` back into per-stage lists."""
    values = iter(tensors)
    state = [next(values) if s.state_columns is not None else None for s in stages]
    fresh = [next(values) if s.fresh else None for s in stages]
    biases = [next(values) if not s.reads_input else None for s in stages]
    pure = [(next(values), next(values)) if s.kind == "pure" else None for s in stages]
    return Weights(
        state=state,
        state_t=[w.t() if w is not None else None for w in state],
        fresh=fresh,
        fresh_t=[w.t() if w is not None else None for w in fresh],
        biases=biases,
        pure=pure,
    )


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


def _closed_form_rows(mode: str, hidden: int, dt: float | None) -> int:
    if mode == "pure":
        return hidden
    return 4 * hidden if dt is None else 3 * hidden


def dense_program(cell, dt: float | None) -> Program:
    """Build the program of a dense ``CfCCell``; ``dt=None`` for per-sample elapsed times."""
    inputs, hidden = cell.input_size, cell.hidden_size
    linears = [m for m in cell.backbone if isinstance(m, torch.nn.Linear)]
    activation = cell.backbone_activation
    scale = SIGMOID_FORMS[activation][0] if activation in SIGMOID_FORMS else 1.0
    heads_weight, heads_bias = _fold_heads(cell.heads.weight, cell.heads.bias, cell.mode, dt)
    heads_rows = _closed_form_rows(cell.mode, hidden, dt)
    heads_pure = (cell.w_tau.abs(), cell.A) if cell.mode == "pure" else None

    if not linears:  # the heads read [u; h] directly
        return Program(
            stages=(Stage(cell.mode, heads_rows, hidden, True, (0, hidden), False, 0),),
            order=None,
            input_weights=[heads_weight[:, :inputs]],
            biases=[heads_bias],
            state_weights=[heads_weight[:, inputs:]],
            fresh_weights=[None],
            pure=[heads_pure],
        )

    first = linears[0]
    width = first.out_features
    stages = [Stage(activation, width, width, True, (0, hidden), False, None)]
    input_weights = [scale * first.weight[:, :inputs]]
    biases = [scale * first.bias]
    state_weights = [scale * first.weight[:, inputs:]]
    fresh_weights: list[Tensor | None] = [None]
    for linear in linears[1:]:
        width = linear.out_features
        stages.append(Stage(activation, width, width, False, None, True, None))
        input_weights.append(None)
        biases.append(scale * linear.bias)
        state_weights.append(None)
        fresh_weights.append(scale * linear.weight)
    stages.append(Stage(cell.mode, heads_rows, hidden, False, None, True, 0))
    input_weights.append(None)
    biases.append(heads_bias)
    state_weights.append(None)
    fresh_weights.append(heads_weight)
    return Program(
        stages=tuple(stages),
        order=None,
        input_weights=input_weights,
        biases=biases,
        state_weights=state_weights,
        fresh_weights=fresh_weights,
        pure=[None] * (len(stages) - 1) + [heads_pure],
    )


def wired_program(cell, dt: float | None) -> Program:
    """Build the program of a ``WiredCfCCell``; every wiring layer is a closed-form stage."""
    layers = list(cell.layers)
    units, inputs = cell.state_size, cell.sensory_size

    # The internal state order is the neuron-id order when every layer is a contiguous run of
    # ids (true for NCP wirings), so that stage outputs are slices of the state. Otherwise it
    # is the layer order.
    ids = [layer.neuron_ids for layer in layers]
    if all(_is_run(i) for i in ids):
        order = None
        position = torch.arange(units, device=ids[0].device)
        offsets = [int(i[0]) for i in ids]
    else:
        order = torch.cat(ids)
        position = torch.empty_like(order)
        position[order] = torch.arange(units, device=order.device)
        offsets = torch.tensor([0] + [len(i) for i in ids]).cumsum(0)[:-1].tolist()

    stages, input_weights, biases, state_weights, fresh_weights, pure = [], [], [], [], [], []
    previous_width = 0
    for layer, offset in zip(layers, offsets):
        hidden = layer.size
        n_x, n_fresh, _ = layer.splits
        weight, bias = _fold_heads(layer.masked_weight(), layer.bias, layer.mode, dt)
        rows = weight.shape[0]

        # The layer's state sources: a contiguous block when possible, else the whole state
        # with zero columns where the layer has no synapse.
        sources = position[layer.state_sources]
        state_part = weight[:, n_x + n_fresh :]
        if _is_run(torch.sort(sources).values):
            start = int(sources.min())
            columns = (start, start + len(sources))
            state_weight = weight.new_zeros(rows, len(sources)).index_add(
                1, sources - start, state_part
            )
        else:
            columns = (0, units)
            state_weight = weight.new_zeros(rows, units).index_add(1, sources, state_part)

        input_weight = None
        if n_x:
            input_weight = weight.new_zeros(rows, inputs).index_add(
                1, layer.x_sources, weight[:, :n_x]
            )
        fresh_weight = None
        if n_fresh:
            fresh_weight = weight.new_zeros(rows, previous_width).index_add(
                1, layer.fresh_sources, weight[:, n_x : n_x + n_fresh]
            )

        stages.append(Stage(layer.mode, rows, hidden, n_x > 0, columns, n_fresh > 0, offset))
        input_weights.append(input_weight)
        biases.append(bias)
        state_weights.append(state_weight)
        fresh_weights.append(fresh_weight)
        pure.append((layer.w_tau.abs(), layer.A) if layer.mode == "pure" else None)
        previous_width = hidden

    return Program(
        stages=tuple(stages),
        order=order,
        input_weights=input_weights,
        biases=biases,
        state_weights=state_weights,
        fresh_weights=fresh_weights,
        pure=pure,
    )


def _is_run(values: Tensor) -> bool:
    """Return whether ``values`` is ``start, start + 1, ..., start + n - 1``."""
    if values.numel() == 0:
        return False
    start = int(values[0])
    expected = torch.arange(start, start + values.numel(), device=values.device)
    return bool(torch.equal(values, expected))


@dataclass
class Prepared:
    """A program with what its loops need, cached for inference."""

    program: Program
    weights: Weights
    inverse: Tensor | None  # neuron id -> internal position
    constants: dict[str, Tensor]
    input_t: list[Tensor | None]  # per stage, (F, rows): transposed input weights


def prepare(cell, dt: float | None, record: bool) -> Prepared:
    """Return the cell's program for elapsed time ``dt`` (None: per-sample times).

    With ``record`` the folds are recorded by autograd and rebuilt on every call; without it
    the result is cached until a parameter changes.
    """

    def build() -> Prepared:
        program = (wired_program if hasattr(cell, "layers") else dense_program)(cell, dt)
        reference = program.biases[0]
        return Prepared(
            program,
            split_tensors(program.stages, program.loop_tensors()),
            _inverse(program.order) if program.order is not None else None,
            constants_like(reference),
            [w.t() if w is not None else None for w in program.input_weights],
        )

    if record:
        return build()
    return _CACHE.get(cell, dt, build)


def dropout_probabilities(cell) -> list[float]:
    """Return the active dropout probability after each backbone layer (0.0 where off).

    The backbone's ``nn.Dropout`` modules decide, as in the reference. Each follows its own
    ``training`` flag and ``p``. So a module switched to ``eval()`` or set to ``p = 0`` drops
    nothing, and one left in training mode drops even when the cell is in ``eval()``. A cell
    without dropout modules (a wired CfC, or no dropout) gives an empty list.
    """
    backbone = cell._modules.get("backbone", ())  # not getattr: its miss costs a microsecond
    return [
        module.p if module.training else 0.0
        for module in backbone
        if isinstance(module, torch.nn.Dropout)
    ]


def dropout_active(cell) -> bool:
    """Return whether any of the cell's backbone dropout modules drops units now."""
    return any(p > 0.0 for p in dropout_probabilities(cell))


def supports_fast_path(cell, record: bool = False) -> bool:
    """Return False where only the reference applies: a PyTorch without the fast paths (see
    ``FAST_PATHS_SUPPORTED``), or active dropout where autograd does not record (the single
    step and the inference loop draw no masks). ``record``: whether autograd records the run.
    """
    return FAST_PATHS_SUPPORTED and (record or not dropout_active(cell))


def draw_dropout_masks(cell, stages, steps: int, batch: int, like: Tensor):
    """Return the backbone dropout multipliers of a recorded run, or None without dropout.

    One (T, B, width) tensor per activation stage whose dropout module is active (None for
    the others and for a closed form), drawn before the loop: each entry is 0 with the
    module's probability p, else ``1 / (1 - p)``, as ``nn.Dropout`` scales. The reference
    draws its masks step by step, so the two paths use the random stream differently and
    agree in distribution, not sample by sample. Uniform numbers compared with ``1 - p`` cost
    a third of the time of ``bernoulli_`` on the CPU.
    """
    probabilities = dropout_probabilities(cell)
    if not any(p > 0.0 for p in probabilities):
        return None
    per_layer = iter(probabilities)  # the activation stages are the backbone layers, in order
    masks = []
    for stage in stages:
        p = 0.0 if stage.closed_form else next(per_layer)
        if p >= 1.0:  # nn.Dropout(p=1) drops everything
            masks.append(like.new_zeros(steps, batch, stage.width))
        elif p > 0.0:
            keep = 1.0 - p
            mask = like.new_empty(steps, batch, stage.width).uniform_().lt_(keep).div_(keep)
            masks.append(mask)
        else:
            masks.append(None)
    return masks


def constants_like(like: Tensor) -> dict[str, Tensor]:
    """Return the 0-d shift constants of the sigmoid forms, in ``like``'s dtype and device."""
    constants = {name: like.new_full((), shift) for name, (_, _, shift) in SIGMOID_FORMS.items()}
    constants["closed_form"] = like.new_full((), -1.0)  # tanh = 2 sigmoid(2x) - 1
    return constants


def _inverse(order: Tensor) -> Tensor:
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return inverse


# ---------------------------------------------------------------------- per-stage kernels


class _StageRun:
    """One stage's buffers and per-step views for one run of the loop.

    ``pre[t]`` (B, rows) receives the stage's pre-activation at step t. After the step it
    contains what the backward needs: the sigmoids of a sigmoid-form activation or of a
    "default" or "no_gate" closed form (in its first 3H columns), or else the pre-activation.
    "pure" also keeps its decay factor in ``decay[t]``. With ``steps=None`` (inference) one
    buffer serves every step. ``dropout`` (T, B, width), for an activation stage of a recorded
    run, multiplies the output at each step (see ``draw_dropout_masks``).
    """

    def __init__(
        self, stage: Stage, steps: int | None, batch: int, like: Tensor, dropout=None
    ):
        self.stage = stage
        self.dropout_buffer = dropout
        self.dropout = dropout.unbind(0) if dropout is not None else None
        kind, rows, width = stage.kind, stage.rows, stage.width
        buffer = like.new_empty(steps or 1, batch, rows)
        self.buffer = buffer
        self.pre = _per_step(buffer, steps)
        self.output = like.new_empty(batch, width) if not stage.closed_form else None
        if kind == "pure":
            self.decay_buffer = like.new_empty(steps or 1, batch, width)
            self.decay = _per_step(self.decay_buffer, steps)
        if kind in ("default", "no_gate"):
            hidden = width
            self.sigmoids = _per_step(buffer[:, :, : 3 * hidden], steps)
            self.sigmoid_f = _per_step(buffer[:, :, : 2 * hidden], steps)
            self.s1 = _per_step(buffer[:, :, :hidden], steps)
            self.s2 = _per_step(buffer[:, :, hidden : 2 * hidden], steps)
            self.gate = _per_step(buffer[:, :, 2 * hidden : 3 * hidden], steps)
            self.t_b = None
            if rows == 4 * hidden:
                self.t_b = _per_step(buffer[:, :, 3 * hidden :], steps)
            self.tanh = like.new_empty(batch, 2 * hidden)
            self.tanh_1, self.tanh_2 = self.tanh[:, :hidden], self.tanh[:, hidden:]

    def forward(self, t: int, dt, constants, pure, out: Tensor | None) -> Tensor:
        """Apply the stage to ``pre[t]`` (already filled); return its output (B, width).

        A closed form writes its output into ``out``, its slice of the new state.
        """
        kind = self.stage.kind
        pre = self.pre[t]
        if not self.stage.closed_form:
            z = self._activation(pre, constants)
            return z if self.dropout is None else z.mul_(self.dropout[t])
        if kind == "pure":
            magnitude, amplitude = pure
            decay = torch.add(pre.abs(), magnitude, out=self.decay[t]).mul_(-dt).exp_()
            # A - A e f_1
            return torch.addcmul(amplitude, amplitude * decay, pre, value=-1.0, out=out)

        gate = self.gate[t]
        if self.t_b is not None:  # per-sample times: the gate is t_a dt + t_b
            torch.addcmul(self.t_b[t], gate, dt, out=gate)
        self.sigmoids[t].sigmoid_()  # sigmoid(2 f_1), sigmoid(2 f_2), gate
        torch.add(constants["closed_form"], self.sigmoid_f[t], alpha=2.0, out=self.tanh)
        if kind == "default":
            return torch.lerp(self.tanh_1, self.tanh_2, gate, out=out)
        return torch.addcmul(self.tanh_1, gate, self.tanh_2, out=out)

    def _activation(self, pre: Tensor, constants) -> Tensor:
        """Apply a backbone activation to ``pre``; a sigmoid form keeps its sigmoid there."""
        kind = self.stage.kind
        if kind in SIGMOID_FORMS:
            _, output_scale, _ = SIGMOID_FORMS[kind]
            return torch.add(constants[kind], pre.sigmoid_(), alpha=output_scale, out=self.output)
        if kind == "relu":
            return torch.clamp_min(pre, 0.0, out=self.output)
        return F.gelu(pre) if kind == "gelu" else F.silu(pre)

    def outputs(self) -> Tensor:
        """Return the output at every step (T, B, width) of an activation stage, recomputed
        from what the forward kept."""
        kind, saved = self.stage.kind, self.buffer
        if kind in SIGMOID_FORMS:
            _, output_scale, shift = SIGMOID_FORMS[kind]
            z = saved * output_scale + shift
        elif kind == "relu":
            z = torch.relu(saved)
        else:
            z = F.gelu(saved) if kind == "gelu" else F.silu(saved)
        return z if self.dropout_buffer is None else z.mul_(self.dropout_buffer)


class _StageGrad:
    """One stage's gradient buffers for the backward: ``grad_pre[t]`` (B, rows)."""

    def __init__(self, run: _StageRun, steps: int, batch: int):
        stage = self.stage = run.stage
        self.run = run
        like = run.buffer
        self.buffer = like.new_empty(steps, batch, stage.rows)
        self.grad_pre = self.buffer.unbind(0)
        if stage.kind == "pure":
            self.grad_magnitude = like.new_zeros(batch, stage.width)
            self.grad_amplitude = like.new_zeros(batch, stage.width)
        if stage.kind in ("default", "no_gate"):
            hidden = stage.width
            self.upstream = like.new_empty(batch, 3 * hidden)  # d(loss)/d(sigmoids)
            self.up_1 = self.upstream[:, :hidden]
            self.up_2 = self.upstream[:, hidden : 2 * hidden]
            self.up_gate = self.upstream[:, 2 * hidden :]
            self.twice = like.new_empty(batch, hidden)
            self.minus_one = like.new_full((), -1.0)
            rows = self.buffer
            self.grad_sigmoids = rows[:, :, : 3 * hidden].unbind(0)
            if stage.rows == 4 * hidden:
                self.grad_f = rows[:, :, : 2 * hidden].unbind(0)
                self.grad_t_a = rows[:, :, 2 * hidden : 3 * hidden].unbind(0)
                self.grad_t_b = rows[:, :, 3 * hidden :].unbind(0)

    def backward(self, t: int, grad: Tensor, dt, pure) -> Tensor:
        """Write d(loss)/d(pre[t]) into ``grad_pre[t]`` from d(loss)/d(output) and return it."""
        kind, run = self.stage.kind, self.run
        grad_pre = self.grad_pre[t]
        saved = run.pre[t]
        if run.dropout is not None:  # z = m act(p): d(loss)/d(act) = m d(loss)/dz
            grad = grad * run.dropout[t]
        if kind in SIGMOID_FORMS:
            _, output_scale, _ = SIGMOID_FORMS[kind]
            return torch.ops.aten.sigmoid_backward.grad_input(
                grad * output_scale, saved, grad_input=grad_pre
            )
        if kind == "relu":
            return torch.ops.aten.threshold_backward.grad_input(
                grad, saved, 0.0, grad_input=grad_pre
            )
        if kind == "gelu":
            return grad_pre.copy_(torch.ops.aten.gelu_backward(grad, saved))
        if kind == "silu":
            return grad_pre.copy_(torch.ops.aten.silu_backward(grad, saved))

        if kind == "pure":
            magnitude, amplitude = pure
            decay = run.decay[t]
            # d/df_1 of A - A e f_1, with e = exp(-dt (|w| + |f_1|)): -A e (1 - dt |f_1|).
            torch.mul(saved.abs(), dt, out=grad_pre).sub_(1.0).mul_(decay).mul_(amplitude)
            grad_pre.mul_(grad)
            # d/dA = 1 - e f_1 and d/d|w| = A e f_1 dt.
            e_f = decay * saved
            self.grad_amplitude.addcmul_(grad, 1.0 - e_f)
            self.grad_magnitude.addcmul_(grad, e_f.mul_(amplitude).mul_(dt))
            return grad_pre

        s1, s2, gate = run.s1[t], run.s2[t], run.gate[t]
        # The tanh of each head is 2 s - 1. A Python number in an operation costs a tensor
        # conversion per call, so 2 g is written g + g and 2 s - 1 uses a 0-d constant.
        twice = torch.add(grad, grad, out=self.twice)
        if kind == "default":  # h = t1 (1 - g) + t2 g
            torch.mul(twice, gate, out=self.up_2)
            torch.sub(twice, self.up_2, out=self.up_1)
            torch.sub(s2, s1, out=self.up_gate).mul_(twice)
        else:  # h = t1 + g t2
            self.up_1.copy_(twice)
            torch.mul(twice, gate, out=self.up_2)
            torch.add(self.minus_one, s2, alpha=2.0, out=self.up_gate).mul_(grad)
        sigmoids = run.sigmoids[t]
        if self.stage.rows == 3 * self.stage.width:
            torch.ops.aten.sigmoid_backward.grad_input(
                self.upstream, sigmoids, grad_input=self.grad_sigmoids[t]
            )
            return grad_pre
        # Per-sample times: gate = sigmoid(t_a dt + t_b).
        hidden = self.stage.width
        torch.ops.aten.sigmoid_backward.grad_input(
            self.upstream[:, : 2 * hidden], run.sigmoid_f[t], grad_input=self.grad_f[t]
        )
        grad_gate = torch.ops.aten.sigmoid_backward.grad_input(
            self.up_gate, gate, grad_input=self.grad_t_b[t]
        )
        torch.mul(grad_gate, dt, out=self.grad_t_a[t])
        return grad_pre


def _per_step(buffer: Tensor, steps: int | None):
    """Return per-step views of a (T, ...) buffer, or of its single slot for inference."""
    views = buffer.unbind(0)
    return views if steps else _Repeat(views[0])


class _Repeat:
    """A sequence whose every item is the same view (one inference buffer for all steps)."""

    def __init__(self, item: Tensor):
        self.item = item

    def __getitem__(self, index: int) -> Tensor:
        return self.item


# ---------------------------------------------------------------------- the loops


def _dt_at(dt, t: int):
    return dt if isinstance(dt, float) else dt[t]


def _step_elements(stages: tuple[Stage, ...], batch: int) -> int:
    """Return the output size of a step's largest operation (see ``step_threads``)."""
    return batch * max(stage.rows for stage in stages)


def _forward_steps(
    stages, weights: Weights, runs, inputs, previous, new, constants, dt, t_range, offset=0
):
    """Run the steps in ``t_range``, each from the previous state to the new one.

    ``inputs[s][t - offset]`` is stage s's input term at step t. ``previous[s][t]`` is the
    block of the old state that stage s reads, and ``new[s][t]`` the slice of the new state
    that it writes.
    """
    for t in t_range:
        dt_t = _dt_at(dt, t)
        z = None
        for index, stage in enumerate(stages):
            run = runs[index]
            pre = run.pre[t]
            source = inputs[index][t - offset] if stage.reads_input else weights.biases[index]
            if stage.state_columns is not None:
                torch.addmm(source, previous[index][t], weights.state_t[index], out=pre)
                if stage.fresh:
                    pre.addmm_(z, weights.fresh_t[index])
            elif stage.fresh:
                torch.addmm(source, z, weights.fresh_t[index], out=pre)
            else:
                pre.copy_(source)
            out = new[index][t] if stage.closed_form else None
            z = run.forward(t, dt_t, constants, weights.pure[index], out)


def _state_views(stages, states: Tensor, first: int, last: int | None):
    """Return, per stage, the per-step views of ``states[first:last]`` that it reads
    (``state_columns``) or writes (``state_offset``)."""
    reads, writes = [], []
    block = states[first:last]
    for stage in stages:
        if stage.state_columns is not None:
            start, stop = stage.state_columns
            reads.append(block[:, :, start:stop].unbind(0))
        else:
            reads.append(None)
        if stage.closed_form:
            offset = stage.state_offset
            writes.append(block[:, :, offset : offset + stage.width].unbind(0))
        else:
            writes.append(None)
    return reads, writes


class CfCSequence(torch.autograd.Function):
    """The CfC time loop as one autograd node; see the module docstring.

    Inputs, in order:

    * ``stages``, static, and ``keep``: return every state, else only the last;
    * the number of input terms, the number of steps T (a wiring may have no input term),
      ``y0`` (B, N) and ``dt``, a float or a (T, B, 1) tensor without gradient;
    * ``mask``, (T, B, 1) of 0/1 or None; ``dropout``, the per-stage multipliers of
      ``draw_dropout_masks`` or None; and a dict of 0-d constants;
    * the input terms (T, B, rows) of the stages that read the input, then
      ``Program.loop_tensors()``.

    Returns the states (T, B, N) with ``keep``, else the final state (B, N).
    """

    @staticmethod
    def forward(ctx, stages, keep, input_count, steps, y0, dt, mask, dropout, constants, *tensors):
        inputs_flat, loop = tensors[:input_count], list(tensors[input_count:])
        batch = y0.shape[0]
        weights = split_tensors(stages, loop)
        inputs = _per_stage_inputs(stages, inputs_flat)
        dropout = dropout or [None] * len(stages)
        runs = [_StageRun(s, steps, batch, y0, m) for s, m in zip(stages, dropout)]

        states = y0.new_empty(steps + 1, batch, y0.shape[1])  # y_0 .. y_T
        states[0] = y0
        # With a mask the stages write a raw new state, and the state keeps its old value on
        # masked steps.
        raw = torch.empty_like(states[1:]) if mask is not None else None
        previous, _ = _state_views(stages, states, 0, -1)
        _, new = _state_views(stages, states if raw is None else raw, 1 if raw is None else 0, None)

        with step_threads(_step_elements(stages, batch)):
            if mask is None:
                _forward_steps(
                    stages, weights, runs, inputs, previous, new, constants, dt, range(steps)
                )
            else:
                for t in range(steps):
                    _forward_steps(
                        stages, weights, runs, inputs, previous, new, constants, dt, (t,)
                    )
                    torch.where(mask[t] > 0, raw[t], states[t], out=states[t + 1])

        ctx.stages, ctx.keep, ctx.input_count = stages, keep, input_count
        ctx.float_dt = dt if isinstance(dt, float) else None
        ctx.runs = runs
        empty = y0.new_empty(0)
        kept = [run.buffer for run in runs]
        kept += [run.decay_buffer for run in runs if run.stage.kind == "pure"]
        ctx.save_for_backward(
            states,
            mask if mask is not None else empty,
            dt if isinstance(dt, Tensor) else empty,
            *loop,
            *kept,
        )
        return states[1:] if keep else states[steps].clone()

    @staticmethod
    def backward(ctx, grad_output):
        stages, runs = ctx.stages, ctx.runs
        states, mask, dt, *rest = ctx.saved_tensors
        mask = mask if mask.numel() else None
        dt = ctx.float_dt if ctx.float_dt is not None else dt
        loop_count = len(rest) - len(runs) - sum(r.stage.kind == "pure" for r in runs)
        weights = split_tensors(stages, rest[:loop_count])
        steps, batch, units = states.shape[0] - 1, states.shape[1], states.shape[2]
        grads = [_StageGrad(run, steps, batch) for run in runs]

        # Per-stage views of the state gradient (closed-form outputs) and of the carry.
        grad_state = states.new_empty(batch, units)
        carry = torch.zeros_like(grad_state)  # d(loss)/d(y_t) through later steps
        grad_slices, carry_slices = [], []
        fresh_buffers = [states.new_empty(batch, stage.width) for stage in stages]
        for stage in stages:
            if stage.closed_form:
                offset = stage.state_offset
                grad_slices.append(grad_state[:, offset : offset + stage.width])
            else:
                grad_slices.append(None)
            if stage.state_columns is not None:
                start, stop = stage.state_columns
                carry_slices.append(carry[:, start:stop])
            else:
                carry_slices.append(None)

        with step_threads(_step_elements(stages, batch)):
            for t in range(steps - 1, -1, -1):
                dt_t = _dt_at(dt, t)
                if ctx.keep:
                    torch.add(carry, grad_output[t], out=grad_state)
                elif t == steps - 1:
                    torch.add(carry, grad_output, out=grad_state)
                else:
                    grad_state.copy_(carry)
                carry_direct = None
                if mask is not None:  # y_t = m y_new + (1 - m) y_{t-1}
                    carry_direct = grad_state * (1.0 - mask[t])
                    grad_state.mul_(mask[t])

                carry.zero_()
                # d(loss)/d(output) of the stage before, when this stage reads it fresh; for
                # a closed form it already includes the stage's slice of grad_state.
                grad_fresh = None
                for index in range(len(stages) - 1, -1, -1):
                    stage = stages[index]
                    grad_out = grad_fresh
                    if grad_out is None and stage.closed_form:
                        grad_out = grad_slices[index]
                    grad_pre = grads[index].backward(t, grad_out, dt_t, weights.pure[index])
                    if stage.fresh:
                        before = index - 1
                        if stages[before].closed_form:
                            grad_fresh = torch.addmm(
                                grad_slices[before],
                                grad_pre,
                                weights.fresh[index],
                                out=fresh_buffers[before],
                            )
                        else:
                            grad_fresh = torch.mm(
                                grad_pre, weights.fresh[index], out=fresh_buffers[before]
                            )
                    if stage.state_columns is not None:
                        carry_slices[index].addmm_(grad_pre, weights.state[index])
                if carry_direct is not None:
                    carry += carry_direct

        # Weight gradients: one matrix product over all steps each.
        flat = steps * batch
        grad_state_weights, grad_fresh_weights, grad_biases, grad_pure = [], [], [], []
        grad_inputs = []
        for index, stage in enumerate(stages):
            grad_pre = grads[index].buffer.reshape(flat, stage.rows)
            if stage.state_columns is not None:
                start, stop = stage.state_columns
                previous = states[:-1, :, start:stop].reshape(flat, stop - start)
                grad_state_weights.append(grad_pre.t() @ previous)
            if stage.fresh:
                source = _stage_outputs(stages, runs, states, index - 1)
                source = source.reshape(flat, source.shape[-1])  # (T, B, W) -> (T B, W)
                grad_fresh_weights.append(grad_pre.t() @ source)
            if stage.reads_input:
                grad_inputs.append(grads[index].buffer)
            else:
                grad_biases.append(grad_pre.sum(0))
            if stage.kind == "pure":
                stage_grads = grads[index]
                grad_pure.append(stage_grads.grad_magnitude.sum(0))
                grad_pure.append(stage_grads.grad_amplitude.sum(0))

        return (
            None,
            None,
            None,
            None,
            carry,
            None,
            None,
            None,
            None,
            *grad_inputs,
            *grad_state_weights,
            *grad_fresh_weights,
            *grad_biases,
            *grad_pure,
        )


def _stage_outputs(stages, runs, states: Tensor, index: int) -> Tensor:
    """Return stage ``index``'s output at every step, (T, B, width)."""
    stage = stages[index]
    if not stage.closed_form:
        return runs[index].outputs()
    # A closed form's output is its slice of the state. On a masked step the state kept its
    # old value instead, but no gradient reaches the stages of a masked step.
    offset = stage.state_offset
    return states[1:, :, offset : offset + stage.width]


def _per_stage_inputs(stages, inputs_flat):
    """Return, per stage, the per-step views of its input term, or None."""
    values = iter(inputs_flat)
    per_stage = []
    for stage in stages:
        per_stage.append(next(values).unbind(0) if stage.reads_input else None)
    return per_stage


# ---------------------------------------------------------------------- entry points


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

    if record:
        inputs = program.input_terms(x_time)  # each (T, B, rows)
        steps, batch = x_time.shape[:2]
        dropout = draw_dropout_masks(cell, program.stages, steps, batch, y0)
        result = CfCSequence.apply(
            program.stages,
            keep,
            len(inputs),
            steps,
            y0,
            dt_time,
            mask_time,
            dropout,
            prepared.constants,
            *inputs,
            *program.loop_tensors(),
        )
        states, last = (result, result[-1]) if keep else (None, result)
    else:
        states, last = _inference(prepared, x_time, y0, dt_time, mask_time, keep, chunk)

    if order is not None:
        last = last.index_select(1, prepared.inverse)
        states = states.index_select(2, prepared.inverse) if states is not None else None
    if states is not None:
        states = states.transpose(0, 1).contiguous()  # (T, B, N) -> (B, T, N)
    return states, last


def _inference(prepared: Prepared, x_time, y0, dt, mask, keep: bool, chunk: int):
    """Run the loop without autograd: input terms per chunk of steps, and no per-step
    tensors kept beyond the states that the caller asked for."""
    program, weights = prepared.program, prepared.weights
    stages = program.stages
    steps, batch, _ = x_time.shape
    with torch.no_grad():
        runs = [_StageRun(stage, None, batch, y0) for stage in stages]
        if keep:  # states[t] is y_t; y_0 in front
            states = y0.new_empty(steps + 1, batch, y0.shape[1])
            states[0] = y0
        else:  # two buffers in turn: y_t lives in ring[t % 2]
            states = y0.new_empty(2, batch, y0.shape[1])
            states[0] = y0
        raw = torch.empty_like(y0) if mask is not None else None
        previous, new = _state_views(stages, states, 0, None)
        if not keep:
            previous = [_Cycle(v) if v is not None else None for v in previous]
            new = [_Cycle(v, shift=1) if v is not None else None for v in new]
        else:
            new = [v[1:] if v is not None else None for v in new]
        if raw is not None:
            _, raw_views = _state_views(stages, raw.unsqueeze(0), 0, None)
            new = [_Repeat(v[0]) if v is not None else None for v in raw_views]

        elements = _step_elements(stages, batch)
        for start in range(0, steps, chunk):
            stop = min(start + chunk, steps)
            inputs = _per_stage_inputs(stages, program.input_terms(x_time[start:stop]))
            with step_threads(elements):
                if mask is None:
                    _forward_steps(
                        stages,
                        weights,
                        runs,
                        inputs,
                        previous,
                        new,
                        prepared.constants,
                        dt,
                        range(start, stop),
                        start,
                    )
                    continue
                for t in range(start, stop):
                    _forward_steps(
                        stages,
                        weights,
                        runs,
                        inputs,
                        previous,
                        new,
                        prepared.constants,
                        dt,
                        (t,),
                        start,
                    )
                    if keep:
                        old, target = states[t], states[t + 1]
                    else:
                        old, target = states[t % 2], states[(t + 1) % 2]
                    torch.where(mask[t] > 0, raw, old, out=target)

    last = states[steps] if keep else states[steps % 2].clone()
    return (states[1:] if keep else None), last


class _Cycle:
    """Per-step views of two buffers used in turn: item t is ``views[(t + shift) % 2]``."""

    def __init__(self, views, shift: int = 0):
        self.views, self.shift = views, shift

    def __getitem__(self, t: int) -> Tensor:
        return self.views[(t + self.shift) % 2]


def step(cell, x: Tensor, h: Tensor, dt: float | Tensor) -> Tensor:
    """Advance one step without autograd: x (B, F), h (B, N), dt a float or (B, 1).

    The caller ensures that autograd does not record (no gradient is required).
    """
    if x.shape[0] == 1:
        value = dt if isinstance(dt, float) else float(dt)
        prepared = prepare(cell, value, record=False)
        workspace = thread_workspace(prepared, lambda: _SingleStep(prepared))
        return workspace.run(x.view(-1), h.view(-1), value).unsqueeze(0)
    prepared = prepare(cell, dt if isinstance(dt, float) else None, record=False)
    program, weights, constants = prepared.program, prepared.weights, prepared.constants
    order = program.order
    y = h if order is None else h.index_select(1, order)
    new_state = torch.empty_like(y)
    z = None
    for index, stage in enumerate(program.stages):
        source = weights.biases[index]
        if stage.reads_input:
            source = torch.addmm(program.biases[index], x, prepared.input_t[index])
        if stage.state_columns is not None:
            start, stop = stage.state_columns
            pre = torch.addmm(source, y[:, start:stop], weights.state_t[index])
            if stage.fresh:
                pre.addmm_(z, weights.fresh_t[index])
        elif stage.fresh:
            pre = torch.addmm(source, z, weights.fresh_t[index])
        else:
            pre = source.clone()
        out = None
        if stage.closed_form:
            out = new_state[:, stage.state_offset : stage.state_offset + stage.width]
        z = _single_stage(stage, pre, dt, constants, weights.pure[index], out)
    if order is not None:
        new_state = new_state.index_select(1, prepared.inverse)
    return new_state


def _single_stage(stage: Stage, pre: Tensor, dt, constants, pure, out: Tensor | None) -> Tensor:
    """Apply a stage as ``_StageRun.forward`` does, without buffers; overwrites ``pre``."""
    kind = stage.kind
    if kind in SIGMOID_FORMS:
        _, output_scale, _ = SIGMOID_FORMS[kind]
        return torch.add(constants[kind], pre.sigmoid_(), alpha=output_scale)
    if kind == "relu":
        return pre.clamp_min_(0.0)
    if kind == "gelu":
        return F.gelu(pre)
    if kind == "silu":
        return F.silu(pre)
    if kind == "pure":
        magnitude, amplitude = pure
        decay = torch.add(pre.abs(), magnitude).mul_(-dt).exp_()
        return torch.addcmul(amplitude, amplitude * decay, pre, value=-1.0, out=out)

    hidden = stage.width
    if stage.rows == 4 * hidden:  # per-sample times: the gate is t_a dt + t_b
        gate = pre[:, 2 * hidden : 3 * hidden]
        torch.addcmul(pre[:, 3 * hidden :], gate, dt, out=gate)
        pre = pre[:, : 3 * hidden]
    pre.sigmoid_()  # sigmoid(2 f_1), sigmoid(2 f_2), gate
    tanh_f = torch.add(constants["closed_form"], pre[:, : 2 * hidden], alpha=2.0)
    if kind == "default":
        return torch.lerp(tanh_f[:, :hidden], tanh_f[:, hidden:], pre[:, 2 * hidden :], out=out)
    return torch.addcmul(tanh_f[:, :hidden], pre[:, 2 * hidden :], tanh_f[:, hidden:], out=out)


class _SingleStep:
    """Buffers and views for one sample's step of a program (one workspace per thread).

    For a single sample every operation costs about a microsecond whatever its size, so this
    works on vectors and makes as few calls as it can. One matrix-vector product gives the
    state terms of every stage that reads the state, their weights scattered into one
    (rows, N) matrix. Then each stage adds its input or fresh term in place and applies its
    nonlinearity into buffers whose views were made once.

    When every closed form is "default", each one leaves ``s = lerp(s_1, s_2, g)`` instead of
    its output, with ``s_i = sigmoid(2 f_i)``:

    .. math::

        z = \tanh(f_1) (1 - g) + g \tanh(f_2) = 2 s - 1,

    so the next stage reads ``2 W^f s + (b - W^f 1)`` (weights folded here) and one operation
    at the end maps the whole new state to ``2 s - 1``. That saves the per-stage shift.
    """

    def __init__(self, prepared: Prepared):
        program, weights = prepared.program, prepared.weights
        like = program.biases[0]
        units = sum(stage.width for stage in program.stages if stage.closed_form)
        self.order, self.inverse = program.order, prepared.inverse
        self.constants = prepared.constants
        forms = [stage.kind for stage in program.stages if stage.closed_form]
        self.lerp_state = all(kind == "default" for kind in forms)
        biases, fresh = list(program.biases), list(weights.fresh)
        if self.lerp_state:
            for index, stage in enumerate(program.stages):
                if index and stage.fresh and program.stages[index - 1].kind == "default":
                    biases[index] = biases[index] - fresh[index].sum(1)
                    fresh[index] = 2.0 * fresh[index]

        # The stages that read the state share one product with the state.
        group = [i for i, stage in enumerate(program.stages) if stage.state_columns is not None]
        rows = sum(program.stages[i].rows for i in group)
        self.group_weight = like.new_zeros(rows, units)
        self.group_bias = like.new_empty(rows)
        self.group_pre = like.new_empty(rows)
        self.new_state = like.new_empty(units)
        self.plan = []
        offset = 0
        for index, stage in enumerate(program.stages):
            hidden = stage.width
            if index in group:
                start, stop = stage.state_columns
                self.group_weight[offset : offset + stage.rows, start:stop] = weights.state[index]
                self.group_bias[offset : offset + stage.rows] = biases[index]
                pre = self.group_pre[offset : offset + stage.rows]
                offset += stage.rows
            else:
                pre = like.new_empty(stage.rows)
            entry = {
                "kind": stage.kind,
                "pre": pre,
                "in_group": index in group,
                "bias": biases[index],
                "input": _contiguous(program.input_weights[index]),
                "fresh": _contiguous(fresh[index]),
                "pure": weights.pure[index],
                "output": like.new_empty(hidden) if not stage.closed_form else None,
                "out": None,
            }
            if stage.closed_form:
                start = stage.state_offset
                entry["out"] = self.new_state[start : start + hidden]
            if stage.kind in ("default", "no_gate"):
                tanh = like.new_empty(2 * hidden)
                entry.update(
                    sigmoid_f=pre[: 2 * hidden],
                    sigmoid_1=pre[:hidden],
                    sigmoid_2=pre[hidden : 2 * hidden],
                    gate=pre[2 * hidden :],
                    tanh=tanh,
                    tanh_1=tanh[:hidden],
                    tanh_2=tanh[hidden:],
                )
            self.plan.append(entry)

    def run(self, x: Tensor, h: Tensor, dt: float) -> Tensor:
        """Return the new state (N,) from x (F,) and h (N,) in neuron-id order."""
        y = h if self.order is None else h.index_select(0, self.order)
        torch.addmv(self.group_bias, self.group_weight, y, out=self.group_pre)
        z = None
        for entry in self.plan:
            pre = entry["pre"]
            if entry["in_group"]:
                if entry["input"] is not None:
                    pre.addmv_(entry["input"], x)
                if entry["fresh"] is not None:
                    pre.addmv_(entry["fresh"], z)
            elif entry["input"] is not None:
                torch.addmv(entry["bias"], entry["input"], x, out=pre)
                if entry["fresh"] is not None:
                    pre.addmv_(entry["fresh"], z)
            else:
                torch.addmv(entry["bias"], entry["fresh"], z, out=pre)
            z = self._apply(entry, pre, dt)
        # Each branch returns a new tensor: the caller keeps it while the buffer is reused.
        state = self.new_state
        if self.lerp_state:
            state = torch.add(self.constants["closed_form"], state, alpha=2.0)  # 2 s - 1
        elif self.inverse is None:
            state = state.clone()
        if self.inverse is not None:
            state = state.index_select(0, self.inverse)
        return state

    def _apply(self, entry: dict, pre: Tensor, dt: float) -> Tensor:
        kind = entry["kind"]
        if kind == "default" and self.lerp_state:
            pre.sigmoid_()  # s_1, s_2, gate
            return torch.lerp(
                entry["sigmoid_1"], entry["sigmoid_2"], entry["gate"], out=entry["out"]
            )
        if kind in ("default", "no_gate"):
            pre.sigmoid_()  # sigmoid(2 f_1), sigmoid(2 f_2), gate
            torch.add(
                self.constants["closed_form"], entry["sigmoid_f"], alpha=2.0, out=entry["tanh"]
            )
            if kind == "default":
                return torch.lerp(entry["tanh_1"], entry["tanh_2"], entry["gate"], out=entry["out"])
            return torch.addcmul(entry["tanh_1"], entry["gate"], entry["tanh_2"], out=entry["out"])
        if kind in SIGMOID_FORMS:
            _, output_scale, _ = SIGMOID_FORMS[kind]
            return torch.add(
                self.constants[kind], pre.sigmoid_(), alpha=output_scale, out=entry["output"]
            )
        if kind == "relu":
            return torch.clamp_min(pre, 0.0, out=entry["output"])
        if kind == "gelu":
            return F.gelu(pre)
        if kind == "silu":
            return F.silu(pre)
        magnitude, amplitude = entry["pure"]
        decay = torch.add(pre.abs(), magnitude).mul_(-dt).exp_()
        return torch.addcmul(amplitude, amplitude * decay, pre, value=-1.0, out=entry["out"])


def _contiguous(weight: Tensor | None) -> Tensor | None:
    return weight.contiguous() if weight is not None else None
