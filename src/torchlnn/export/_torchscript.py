"""TorchScript export: a traced step inside a small scripted module.

The cells cannot be compiled by ``torch.jit.script`` (they use closures and ``getattr``), and a
trace of a whole sequence records a fixed number of steps. So the step, which has no loop, is
traced, and a scripted module around it checks the arguments and, for whole sequences, loops
over ``x.size(time_axis)`` steps: a real loop in the TorchScript graph, valid at any length.

NOTE: PyTorch 2.13 deprecates TorchScript (``torch.jit.trace`` and ``torch.jit.script`` warn);
``to_exported_program`` is the maintained route. TorchScript is kept for runtimes that load it
(LibTorch in C++).
"""

from __future__ import annotations

import os
from typing import List, Tuple  # noqa: UP035  TorchScript resolves these names

import torch
from torch import Tensor, nn

from ._checks import (
    build_step,
    check_form,
    check_output_path,
    example_inputs,
    quiet_exporter_warnings,
)


class ScriptedStep(nn.Module):
    """A traced step with argument checks: ``(x, state, dt) -> (output, new_state)``.

    A wrong shape raises ``torch.jit.Error`` (TorchScript's exception type), whose message
    starts with ``builtins.ValueError``.
    """

    __constants__ = ["state_size", "input_rank"]

    def __init__(self, traced_step: nn.Module, state_size: int, input_rank: int):
        super().__init__()
        self.step = traced_step
        self.state_size = state_size
        self.input_rank = input_rank

    def forward(self, x: Tensor, state: Tensor, dt: Tensor) -> Tuple[Tensor, Tensor]:  # noqa: UP006
        batch = x.size(0)
        if x.dim() != self.input_rank:
            raise ValueError(
                f"x must have {self.input_rank} dimensions (B, ...), got shape {list(x.shape)}."
            )
        if state.dim() != 2 or state.size(0) != batch or state.size(1) != self.state_size:
            raise ValueError(
                f"state must have shape [{batch}, {self.state_size}] (B, S), got "
                f"{list(state.shape)}."
            )
        if dt.dim() != 2 or dt.size(0) != batch or dt.size(1) != 1:
            raise ValueError(f"dt must have shape [{batch}, 1] (B, 1), got {list(dt.shape)}.")
        return self.step(x, state, dt)


class ScriptedSequence(nn.Module):
    """A scripted loop over a traced step: ``(x, state, timespans) -> (output, final_state)``.

    Same layout and results as the layer's ``forward(x, hx, timespans)``; see
    ``SequenceModule`` for the shapes.
    """

    __constants__ = ["state_size", "input_rank", "batch_first", "return_sequences"]

    def __init__(
        self,
        traced_step: nn.Module,
        state_size: int,
        input_rank: int,
        batch_first: bool,
        return_sequences: bool,
    ):
        super().__init__()
        self.step = traced_step
        self.state_size = state_size
        self.input_rank = input_rank
        self.batch_first = batch_first
        self.return_sequences = return_sequences

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor) -> Tuple[Tensor, Tensor]:  # noqa: UP006
        if x.dim() != self.input_rank + 1:
            raise ValueError(
                f"x must have {self.input_rank + 1} dimensions (batch and time first), got "
                f"shape {list(x.shape)}."
            )
        if not self.batch_first:
            x = x.transpose(0, 1)  # (T, B, ...) -> (B, T, ...)
            timespans = timespans.transpose(0, 1)  # (T, B, 1) -> (B, T, 1)
        batch, steps = x.size(0), x.size(1)
        if steps == 0:
            raise ValueError("x must have at least one time step, got 0.")
        if state.dim() != 2 or state.size(0) != batch or state.size(1) != self.state_size:
            raise ValueError(
                f"state must have shape [{batch}, {self.state_size}] (B, S), got "
                f"{list(state.shape)}."
            )
        if timespans.dim() != 3 or timespans.size(0) != batch or timespans.size(1) != steps:
            raise ValueError(
                f"timespans must have shape [B, T, 1] = [{batch}, {steps}, 1] (time-major "
                f"[T, B, 1] when batch_first is False), got {list(timespans.shape)}."
            )

        outputs: List[Tensor] = []  # noqa: UP006
        for t in range(steps):
            output, state = self.step(x[:, t], state, timespans[:, t])
            if self.return_sequences:
                outputs.append(output)
            elif t == steps - 1:
                outputs.append(output)

        if not self.return_sequences:
            return outputs[0], state  # (B, O)
        result = torch.stack(outputs, dim=1)  # (B, T, O)
        if not self.batch_first:
            result = result.transpose(0, 1)  # (B, T, O) -> (T, B, O)
        return result, state


def to_torchscript(
    model: nn.Module,
    path: str | os.PathLike | None = None,
    *,
    form: str = "sequence",
    encoder: nn.Module | None = None,
    observation_shape: tuple[int, ...] | None = None,
) -> torch.jit.ScriptModule:
    """Compile a torchlnn layer or cell to TorchScript, valid at every sequence length.

    Args:
        model: a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer, or a cell. It is copied and put in
            eval mode; the original is not changed.
        path: if given, the file to save the module to (``torch.jit.save``).
        form: "sequence" for ``(x, state, timespans) -> (output, final_state)`` in the layer's
            layout, or "step" for ``(x, state, dt) -> (output, new_state)``; see
            ``StepModule`` and ``SequenceModule``.
        encoder: an optional per-step module applied to each observation first.
        observation_shape: the shape of one observation without the batch axis; required with
            an encoder.

    Returns:
        the scripted module. Its batch size and number of steps are free.

    Raises:
        ValueError: an option no traced graph can represent (the adaptive solver), a wrong
            ``form`` or ``observation_shape``.
        OSError: ``path`` cannot be written.
    """
    owner = "to_torchscript"
    check_form(form, owner)
    if path is not None:
        path = check_output_path(path, owner)
    step, batch_first, return_sequences = build_step(model, encoder, owner)
    x, state, dt = example_inputs(step, "step", True, observation_shape, owner)
    input_rank = x.dim()

    with quiet_exporter_warnings(), torch.no_grad():
        traced = torch.jit.trace(step, (x, state, dt))
        if form == "step":
            wrapper: nn.Module = ScriptedStep(traced, step.state_size, input_rank)
        else:
            wrapper = ScriptedSequence(
                traced, step.state_size, input_rank, batch_first, return_sequences
            )
        scripted = torch.jit.script(wrapper)
        if path is not None:
            torch.jit.save(scripted, os.fspath(path))
    return scripted
