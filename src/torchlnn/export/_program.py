"""torch.export: an ExportedProgram with a dynamic batch size and a dynamic number of steps."""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from ._checks import (
    build_step,
    check_form,
    check_output_path,
    example_inputs,
    quiet_exporter_warnings,
)
from ._step import SequenceModule


def export_program(
    model: nn.Module,
    form: str,
    encoder: nn.Module | None,
    observation_shape: tuple[int, ...] | None,
    owner: str,
) -> ExportedProgram:
    """Export the step or the sequence of ``model``; shared by ``to_exported_program`` and ONNX."""
    check_form(form, owner)
    step, batch_first, return_sequences = build_step(model, encoder, owner)
    x, state, dt = example_inputs(step, form, batch_first, observation_shape, owner)

    batch = Dim("batch", min=1)
    if form == "step":
        module: nn.Module = step
        dynamic_shapes = ({0: batch}, {0: batch}, {0: batch})
    else:
        module = SequenceModule(step, batch_first, return_sequences)
        steps = Dim("steps", min=1)
        batch_axis, time_axis = (0, 1) if batch_first else (1, 0)
        sequence_axes = {batch_axis: batch, time_axis: steps}
        dynamic_shapes = (sequence_axes, {0: batch}, sequence_axes)

    with quiet_exporter_warnings(), torch.no_grad():
        return torch.export.export(module, (x, state, dt), dynamic_shapes=dynamic_shapes)


def to_exported_program(
    model: nn.Module,
    path: str | os.PathLike | None = None,
    *,
    form: str = "sequence",
    encoder: nn.Module | None = None,
    observation_shape: tuple[int, ...] | None = None,
) -> ExportedProgram:
    """Export a torchlnn layer or cell with ``torch.export``, valid at every sequence length.

    The whole-sequence form repeats the step with ``scan`` (see ``SequenceModule``), which
    ``torch.export`` keeps as one node whose number of iterations is the symbolic length of
    the time axis. Both the batch size and the number of steps are ``torch.export.Dim``
    values with a minimum of 1 and no maximum.

    Args:
        model: a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer, or a cell (copied, eval mode).
        path: if given, the ``.pt2`` file to save the program to (``torch.export.save``).
        form: "sequence" (``(x, state, timespans) -> (output, final_state)``) or "step"
            (``(x, state, dt) -> (output, new_state)``).
        encoder: an optional per-step module applied to each observation first.
        observation_shape: the shape of one observation without the batch axis; required with
            an encoder.

    Returns:
        the ExportedProgram; ``program.module()`` runs it in Python.

    Raises:
        ValueError: an option no exported graph can represent (the adaptive solver), a wrong
            ``form`` or ``observation_shape``.
        OSError: ``path`` cannot be written.
    """
    owner = "to_exported_program"
    if path is not None:
        path = check_output_path(path, owner)
    program = export_program(model, form, encoder, observation_shape, owner)
    if path is not None:
        with quiet_exporter_warnings():
            torch.export.save(program, os.fspath(path))
    return program
