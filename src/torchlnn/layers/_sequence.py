"""The time loop shared by the LTC and CfC sequence layers."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from torchlnn.cells import MixedMemoryLSTMCell
from torchlnn.cells._common import CheckedWiringLoad
from torchlnn.cells._fast import FAST_DTYPES, autocast_active, exporting

from ._inputs import check_input, check_mask, check_state, check_timespans


@torch.compiler.disable
def _call_eagerly(function, *args):
    """Call ``function(*args)`` outside ``torch.compile``.

    A compiled Python loop over time steps is unrolled, so its graph depends on the sequence
    length and every new length recompiles. The fast loops run eagerly instead: compiling a
    model that contains a torchlnn layer breaks the graph at the layer and needs no
    recompilation per sequence length.
    """
    return function(*args)


def _constant_value(elapsed: Tensor) -> float | Tensor:
    """Return a float when every elapsed time is the same value, else the tensor.

    The fast paths fold a number into the weights; a tensor of equal values then gives the
    same result, to the bit, as that number.
    """
    flat = elapsed.reshape(-1)
    if not flat.numel():  # an empty batch
        return elapsed
    first = flat[0]
    if bool((flat == first).all()):
        return float(first)
    return elapsed


class SequenceResult(NamedTuple):
    """What ``forward_with_states`` returns.

    Attributes:
        output: the layer's output, as ``forward`` returns it.
        states: every neuron's state after every step, (B, T, N) with ``batch_first=True``,
            (T, B, N) otherwise, (T, N) for unbatched input.
        h_n: the final state, as ``forward`` returns it.
    """

    output: Tensor
    states: Tensor
    h_n: Tensor | tuple[Tensor, Tensor]


class LiquidSequence(CheckedWiringLoad):
    """Runs a liquid cell over a sequence; the base of ``torchlnn.LTC`` and ``torchlnn.CfC``.

    The loop, in four phases: check and convert the arguments to batch-first tensors; compute
    the input-only terms of a chunk of steps at once (``cell.prepare_inputs``); advance the
    state step by step (``cell.advance``), keeping it unchanged on masked steps; map the states
    to outputs (``cell.readout``, then the optional projection).

    Subclasses create ``self.rnn_cell`` (and ``self.proj`` when they project the output).
    """

    # Steps whose input terms are computed together; bounds the memory of inference on long
    # sequences while keeping the per-step work in the loop small.
    time_chunk = 32

    # Run the cell's fast path (``rnn_cell.run_fast``) where it applies. Set to False on an
    # instance to run the reference loop below, for instance to compare the two.
    fast_path = True

    def __init__(
        self,
        input_size: int,
        return_sequences: bool,
        batch_first: bool,
        mixed_memory: bool,
    ):
        super().__init__()
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ValueError(
                f"{type(self).__name__}: input_size must be an int >= 1, got {input_size!r}."
            )
        self.input_size = input_size
        self.return_sequences = bool(return_sequences)
        self.batch_first = bool(batch_first)
        self.mixed_memory = bool(mixed_memory)
        self.proj: nn.Module | None = None

    def _add_memory(self) -> None:
        self.lstm = (
            MixedMemoryLSTMCell(self.input_size, self.state_size) if self.mixed_memory else None
        )

    # ------------------------------------------------------------------ sizes, ncps names

    @property
    def state_size(self) -> int:
        """N, the number of neurons."""
        return self.rnn_cell.state_size

    @property
    def motor_size(self) -> int:
        """Number of motor neurons (outputs before any projection)."""
        return self.rnn_cell.motor_size

    @property
    def output_size(self) -> int:
        """Size of the output's last dimension."""
        return self.proj.out_features if self.proj is not None else self.motor_size

    @property
    def use_mixed(self) -> bool:
        """ncps name of ``mixed_memory``."""
        return self.mixed_memory

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        timespans: float | Tensor | None = None,
        *,
        lengths: Tensor | list[int] | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """Run the layer over a sequence and return ``(output, h_n)``.

        Args:
            input: (B, T, F) with ``batch_first=True``, (T, B, F) otherwise, or unbatched
                (T, F).
            hx: initial state (B, N) or (N,); with ``mixed_memory=True`` a tuple ``(h, c)``.
                Zeros of the input's dtype and device when ``None``.
            timespans: elapsed time of each step, in the unit the model was trained with
                (default 1.0): a number, or a tensor of shape (B, T) or (B, T, 1) ((T, B) or
                (T, B, 1) with ``batch_first=False``; (T,) or (T, 1) unbatched). Zero means
                that no time passes.
            lengths: for a padded batch, the number of real steps of each sample, (B,).
            mask: instead of ``lengths``, a bool tensor shaped like ``timespans`` without its
                last dimension; False marks a step to skip.

        Returns:
            output: (B, T, O) (time-major with ``batch_first=False``) with
            ``return_sequences=True``, zero on skipped steps; otherwise the output of the
            final state, (B, O). O is ``output_size``.
            h_n: the final state (B, N); with mixed memory ``(h_n, c_n)``. Skipped steps leave
            the state unchanged, so for a padded sample ``h_n`` is its state after its last
            real step.
        """
        output, _, h_n = self._run(input, hx, timespans, lengths, mask, keep_states=False)
        return output, h_n

    def forward_with_states(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        timespans: float | Tensor | None = None,
        *,
        lengths: Tensor | list[int] | None = None,
        mask: Tensor | None = None,
    ) -> SequenceResult:
        """Run like ``forward`` and also return every neuron's state at every step.

        Returns a ``SequenceResult(output, states, h_n)``; ``states[..., i]`` is neuron ``i``,
        whose role is ``self.wiring.get_type_of_neuron(i)``.
        """
        return SequenceResult(*self._run(input, hx, timespans, lengths, mask, keep_states=True))

    def _run(self, input, hx, timespans, lengths, mask, keep_states: bool):
        owner = type(self).__name__
        x, batched = check_input(input, self.input_size, self.batch_first, owner)
        batch, steps, _ = x.shape
        dt = check_timespans(
            timespans, batch, steps, self.batch_first, batched, x, owner
        )  # float or (B, T, 1)
        step_mask = check_mask(
            lengths, mask, batch, steps, self.batch_first, batched, x.device, owner
        )  # (B, T) or None
        h, c = check_state(
            hx, batch, self.state_size, batched, self.mixed_memory, x, owner
        )  # (B, N) each

        keep = keep_states or self.return_sequences
        fast = self._run_fast(x, h, dt, step_mask, keep)
        if fast is not None:
            state_sequence, h = fast
        else:
            state_sequence, h, c = self._run_reference(x, h, c, dt, step_mask, keep)

        if self.return_sequences:
            output = self._readout(state_sequence)  # (B, T, O)
            if step_mask is not None:
                output = output * step_mask.unsqueeze(-1).to(output.dtype)
        else:
            output = self._readout(h)  # (B, O)

        h_n = (h, c) if self.mixed_memory else h
        return self._restore_layout(output, state_sequence, h_n, batched)

    def _run_fast(self, x, h, dt, step_mask, keep: bool):
        """Return ``(states, h_T)`` from the cell's fast path, or None where it does not apply.

        It does not apply to mixed memory, under autocast, while tracing or exporting, to
        dtypes other than float32 and float64, to elapsed times that require grad, or where
        the cell declines (see each cell's ``run_fast``).
        """
        if not self.fast_path or self.lstm is not None:
            return None
        if exporting() or x.dtype not in FAST_DTYPES:
            return None
        if isinstance(dt, Tensor):
            if dt.requires_grad:
                return None
            dt = _constant_value(dt)
        if autocast_active(x.device.type):
            return None
        run_fast = getattr(self.rnn_cell, "run_fast", None)
        if run_fast is None:
            return None
        return _call_eagerly(run_fast, x, h, dt, step_mask, keep, self.time_chunk)

    def _run_reference(self, x, h, c, dt, step_mask, keep: bool):
        """Run the plain reference loop over the cell's ``prepare_inputs`` and ``advance``."""
        steps = x.shape[1]
        cell, lstm = self.rnn_cell, self.lstm
        states = []
        for start in range(0, steps, self.time_chunk):
            chunk = x[:, start : start + self.time_chunk]  # (B, K, F)
            prepared = cell.prepare_inputs(chunk)  # (B, K, ...)
            memory_prepared = lstm.prepare_inputs(chunk) if lstm is not None else None
            for k in range(chunk.shape[1]):
                t = start + k
                dt_t = dt if isinstance(dt, float) else dt[:, t]  # float or (B, 1)

                h_next, c_next = h, c
                if lstm is not None:
                    h_next, c_next = lstm.advance(memory_prepared[:, k], h, c)
                h_next = cell.advance(prepared[:, k], h_next, dt_t)

                if step_mask is not None:
                    real = step_mask[:, t].unsqueeze(-1)  # (B, 1)
                    h_next = torch.where(real, h_next, h)
                    if c is not None:
                        c_next = torch.where(real, c_next, c)
                h, c = h_next, c_next
                if keep:
                    states.append(h)

        state_sequence = torch.stack(states, dim=1) if keep else None  # (B, T, N)
        return state_sequence, h, c

    def _readout(self, state: Tensor) -> Tensor:
        output = self.rnn_cell.readout(state)
        return self.proj(output) if self.proj is not None else output

    def _restore_layout(self, output, state_sequence, h_n, batched: bool):
        """Put the batch and time axes back where the caller had them."""
        if not batched:
            output = output.squeeze(0)  # (1, T, O) -> (T, O), or (1, O) -> (O,)
            if state_sequence is not None:
                state_sequence = state_sequence.squeeze(0)  # (1, T, N) -> (T, N)
            h_n = tuple(s.squeeze(0) for s in h_n) if isinstance(h_n, tuple) else h_n.squeeze(0)
            return output, state_sequence, h_n
        if not self.batch_first:
            if self.return_sequences:
                output = output.transpose(0, 1)  # (B, T, O) -> (T, B, O)
            if state_sequence is not None:
                state_sequence = state_sequence.transpose(0, 1)  # (B, T, N) -> (T, B, N)
        return output, state_sequence, h_n

    # ------------------------------------------------------------------ configs

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments, with a wiring as its config (JSON-serialisable)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LiquidSequence:
        """Build a layer from ``get_config()``; its parameters are freshly initialised."""
        from torchlnn.wirings import from_config as wiring_from_config

        arguments = dict(config)
        if isinstance(arguments.get("units"), dict):
            arguments["units"] = wiring_from_config(arguments["units"])
        return cls(**arguments)

    def apply_weight_constraints(self) -> None:
        """Do nothing: positivity holds by construction. Kept so ncps training loops run."""

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, units={self.state_size}, "
            f"output_size={self.output_size}, return_sequences={self.return_sequences}, "
            f"batch_first={self.batch_first}, mixed_memory={self.mixed_memory}"
        )
