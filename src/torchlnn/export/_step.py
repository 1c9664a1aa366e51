"""One control step with an explicit state tensor, and whole sequences built from it.

Every deployment form (streaming controller, TorchScript, torch.export, ONNX) runs the same
``StepModule``: ``(x, state, dt) -> (output, new_state)``, with no Python state and no loop, so
nothing in it depends on the sequence length. Whole sequences repeat that step, with a scripted
loop (TorchScript) or a ``scan`` (torch.export and ONNX).

Shapes: B is the batch size and T the number of steps. I is the number of input features of
the liquid cell and N its number of neurons. S is the state size (N, or 2N with mixed memory)
and O the output size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from torchlnn.cells import CfCCell, LTCCell, MixedMemoryLSTMCell, WiredCfCCell
from torchlnn.layers import LiquidSequence
from torchlnn.solvers import ExplicitSolver, Fused

CELL_TYPES = (LTCCell, CfCCell, WiredCfCCell)


@runtime_checkable
class StepProtocol(Protocol):
    """The interface ``StreamingController`` needs from a model: one step, explicit state.

    A lane-keeping policy with a per-frame encoder fits either as ``StepModule(layer,
    encoder=conv_head)`` or as any module with these members.

    Attributes:
        state_size: S, the length of the state vector of one sample.
    """

    state_size: int

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Return the state at the start of an episode, shape (batch_size, S)."""
        ...

    def __call__(self, x: Tensor, state: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """Advance one step: x (B, ...), state (B, S), dt (B, 1) -> (output (B, O), state)."""
        ...


def unpack_model(
    model: nn.Module, owner: str
) -> tuple[nn.Module, MixedMemoryLSTMCell | None, nn.Module | None]:
    """Return ``(cell, lstm, proj)`` of a torchlnn layer, or ``(cell, None, None)`` of a cell."""
    if isinstance(model, LiquidSequence):
        return model.rnn_cell, model.lstm, model.proj
    if isinstance(model, CELL_TYPES):
        return model, None, None
    raise TypeError(
        f"{owner} takes a torchlnn layer (torchlnn.LTC, torchlnn.CfC) or cell (LTCCell, "
        f"CfCCell, WiredCfCCell), got {type(model).__name__}. For a model with a per-step "
        f"encoder, pass the liquid layer and encoder=your_encoder."
    )


class StepModule(nn.Module):
    r"""One step of a torchlnn layer or cell, with its state passed in and returned.

    ``forward(x, state, dt)`` computes, for a layer with every option switched on,

    .. math::

        u &= \mathrm{encoder}(x) \\
        (h', c') &= \mathrm{LSTM}(u, h, c) \quad \text{(mixed memory only)} \\
        h'' &= \mathrm{advance}(u, h', \Delta t) \\
        y &= \mathrm{proj}(\mathrm{readout}(h''))

    exactly as the layer's time loop does for one step, so repeating it over a sequence gives
    the layer's outputs. The state is a single tensor: ``h`` (B, N), or ``[h, c]`` concatenated
    along the last axis (B, 2N) with mixed memory (``pack_state`` and ``unpack_state`` convert
    from and to the layer's ``hx`` form).

    Under ``torch.jit.trace`` and ``torch.export``, the LTC's explicit solvers ("euler",
    "rk4") run their sub-steps without the solver's stability warning and non-finite check,
    because both read tensor values in Python, which a traced or exported graph cannot do. An
    exported explicit solver therefore returns NaN where the eager one raises.

    Args:
        model: a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer, or an ``LTCCell``, ``CfCCell`` or
            ``WiredCfCCell``. The step shares its parameters (no copy).
        encoder: an optional module applied to each observation before the liquid cell, such
            as a convolutional head on camera frames. It maps (B, ...) to (B, I).

    Shapes:
        * x: (B, I), or (B, ...) observations with an encoder
        * state: (B, S); dt: (B, 1), the elapsed time of this step
        * output: (B, O); new state: (B, S)
    """

    def __init__(self, model: nn.Module, encoder: nn.Module | None = None):
        super().__init__()
        cell, lstm, proj = unpack_model(model, "StepModule")
        self.cell = cell
        self.lstm = lstm
        self.proj = proj
        self.encoder = encoder
        self.units = cell.state_size
        self.state_size = self.units * (2 if lstm is not None else 1)
        # I: the features the cell reads (CfCCell calls it input_size, the others sensory_size).
        self.input_size = cell.input_size if isinstance(cell, CfCCell) else cell.sensory_size
        self.output_size = proj.out_features if proj is not None else cell.motor_size
        solver = getattr(cell, "solver", None)
        self._explicit_solver = solver if isinstance(solver, ExplicitSolver) else None

    @property
    def mixed_memory(self) -> bool:
        """Whether the state carries an LSTM memory ``c`` after ``h``."""
        return self.lstm is not None

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Return zeros of shape (batch_size, S), the layer's default initial state."""
        reference = next(self.cell.parameters())
        return torch.zeros(
            batch_size,
            self.state_size,
            device=reference.device if device is None else device,
            dtype=reference.dtype if dtype is None else dtype,
        )

    def pack_state(self, hx: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """Return the state tensor (B, S) for a layer's ``hx``: ``h``, or ``(h, c)``."""
        if self.lstm is None:
            if not isinstance(hx, Tensor):
                raise TypeError(
                    f"pack_state: this model has no mixed memory, so hx must be one tensor of "
                    f"shape (B, {self.units}); got {type(hx).__name__}."
                )
            return hx
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(
                f"pack_state: this model has mixed memory, so hx must be a tuple (h, c) of two "
                f"(B, {self.units}) tensors; got {type(hx).__name__}."
            )
        return torch.cat(tuple(hx), dim=-1)  # (B, N) and (B, N) -> (B, 2N)

    def unpack_state(self, state: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Return the layer's ``hx`` form of a state tensor: ``h``, or ``(h, c)``."""
        if self.lstm is None:
            return state
        return state[..., : self.units], state[..., self.units :]

    def _advance(self, prepared: Tensor, h: Tensor, dt: Tensor) -> Tensor:
        solver = self._explicit_solver
        if solver is None or not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            return self.cell.advance(prepared, h, dt)

        # The explicit solver's integrate() without its value checks (see the class docstring).
        terms = self.cell.synaptic_terms(prepared)
        cm = self.cell.cm
        sub_step = dt / self.cell.ode_unfolds
        for _ in range(self.cell.ode_unfolds):
            h = solver.step(terms, cm, h, sub_step)
        return h

    def advance_state(self, x: Tensor, state: Tensor, dt: Tensor) -> Tensor:
        """Return the state after one step, (B, S); the first half of ``forward``."""
        if self.encoder is not None:
            x = self.encoder(x)  # (B, ...) -> (B, I)

        h = state[:, : self.units]  # (B, N)
        if self.lstm is not None:
            c = state[:, self.units :]  # (B, N)
            h, c = self.lstm.advance(self.lstm.prepare_inputs(x), h, c)
        h = self._advance(self.cell.prepare_inputs(x), h, dt)

        if self.lstm is not None:
            return torch.cat((h, c), dim=-1)  # (B, 2N)
        return h

    def output(self, h: Tensor) -> Tensor:
        """Return the output for neuron states ``h`` (..., N): readout, then projection."""
        output = self.cell.readout(h)  # (..., M)
        if self.proj is not None:
            output = self.proj(output)  # (..., O)
        return output

    def forward(self, x: Tensor, state: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """Advance one step and return ``(output, new_state)``; see the class docstring."""
        state = self.advance_state(x, state, dt)
        return self.output(state[:, : self.units]), state


class SequenceModule(nn.Module):
    """A whole sequence as a ``scan`` over a ``StepModule``, for ``torch.export`` and ONNX.

    ``forward(x, state, timespans) -> (output, final_state)`` returns what the layer returns
    for ``layer(x, hx, timespans)``, in the layer's layout: ``x`` is (B, T, ...) with
    ``batch_first=True``, (T, B, ...) otherwise; ``timespans`` is (B, T, 1) or (T, B, 1);
    ``output`` is (B, T, O) (time-major without ``batch_first``) with ``return_sequences``,
    else (B, O). The loop is ``torch._higher_order_ops.scan`` (a prototype API of PyTorch
    2.13). ``torch.export`` keeps it as one node with a symbolic number of steps, and the ONNX
    exporter turns it into an ONNX ``Scan``. A Python loop would instead be unrolled to the
    example's length.

    Args:
        step: the step to repeat.
        batch_first: the layout of ``x``, ``timespans`` and ``output``.
        return_sequences: return every step's output (True) or the last one only.
    """

    def __init__(self, step: StepModule, batch_first: bool = True, return_sequences: bool = True):
        super().__init__()
        self.step = step
        self.batch_first = bool(batch_first)
        self.return_sequences = bool(return_sequences)

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor) -> tuple[Tensor, Tensor]:
        """Run the step over every time step and return ``(output, final_state)``."""
        from torch._higher_order_ops.scan import scan

        time_axis = 1 if self.batch_first else 0
        units = self.step.units

        def combine(carry: Tensor, inputs: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            x_t, dt_t = inputs  # (B, ...) and (B, 1)
            carry = self.step.advance_state(x_t, carry, dt_t)
            # scan rejects a per-step output that aliases the carry, hence the copy.
            return carry, carry[:, :units].clone()

        # As in the layer, the readout runs once on all states after the loop. Inside the scan
        # body, the ncps connectivity's readout (an index list) breaks the ONNX exporter.
        final_state, states = scan(combine, state, (x, timespans), dim=time_axis)  # (B, T, N)
        if self.return_sequences:
            return self.step.output(states), final_state  # (B, T, O)
        return self.step.output(final_state[:, :units]), final_state  # (B, O)


def sequence_layout(model: nn.Module) -> tuple[bool, bool]:
    """Return ``(batch_first, return_sequences)`` of a layer; a cell counts as both True."""
    if isinstance(model, LiquidSequence):
        return model.batch_first, model.return_sequences
    return True, True


def check_exportable(model: nn.Module, owner: str) -> None:
    """Raise ValueError when ``model`` uses an option that no exported graph can represent."""
    cell, _, _ = unpack_model(model, owner)
    solver = getattr(cell, "solver", None)
    if solver is None or isinstance(solver, (Fused, ExplicitSolver)):
        return
    if getattr(solver, "name", "") == "adaptive":
        raise ValueError(
            f"{owner}: the LTC solver 'adaptive' cannot be exported. Its number of sub-steps "
            f"depends on the state values (error control), so a traced or exported graph would "
            f"either fix the step sizes of the example input or fail. The weights do not depend "
            f"on the solver: rebuild the layer with solver='rk4' (or 'fused'), load the state "
            f"dict and export that."
        )
    raise ValueError(
        f"{owner}: the custom solver {solver!r} cannot be exported; only the built-in 'fused', "
        f"'euler' and 'rk4' solvers are known to trace without data-dependent control flow."
    )


def shape_text(shape: Sequence[int | str]) -> str:
    """Format a shape for messages as Python writes a tuple: ``(B, 19)``, ``(4,)``."""
    sizes = [str(size) for size in shape]
    return "(" + sizes[0] + ",)" if len(sizes) == 1 else "(" + ", ".join(sizes) + ")"
