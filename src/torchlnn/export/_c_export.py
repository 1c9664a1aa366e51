"""C99 for microcontrollers: a dependency-free source and header for a trained cell or layer."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from torch import nn

from torchlnn.cells import CfCCell, LTCCell, WiredCfCCell

from ._c_blocks import (
    cfc_block,
    check_c_solver,
    lstm_block,
    ltc_block,
    ltc_helpers,
    output_block,
    wired_cfc_block,
)
from ._c_writer import C_IDENTIFIER, CWriter, helper_functions, index_type_for
from ._checks import check_output_folder, frozen_copy
from ._step import unpack_model


@dataclasses.dataclass(frozen=True)
class CExport:
    """What ``to_c`` wrote.

    Attributes:
        source: the ``.c`` file.
        header: the ``.h`` file.
        name: the prefix of every C symbol (``<name>_step``, ``<name>_state_t``, ...).
        input_size: I, floats read by ``<name>_step`` from ``input``.
        output_size: O, floats written to ``output``.
        state_size: S, floats in ``<name>_state_t`` (N, or 2N with mixed memory).
        const_bytes: bytes of the constant arrays (weights and indices), which a
            microcontroller keeps in flash; the code itself comes on top.
        state_bytes: bytes of one ``<name>_state_t``, the RAM that lives between steps.
    """

    source: Path
    header: Path
    name: str
    input_size: int
    output_size: int
    state_size: int
    const_bytes: int
    state_bytes: int


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not C_IDENTIFIER.fullmatch(name) or len(name) > 40:
        raise ValueError(
            f"to_c: name must be a C identifier of at most 40 characters (letters, digits and "
            f"underscores, not starting with a digit), got {name!r}."
        )
    return name


def _largest_index(model: nn.Module, input_size: int, units: int) -> int:
    """Return an upper bound of every index and count that the generated arrays contain."""
    largest = max(input_size, units) + 1
    for parameter in model.parameters():
        largest = max(largest, parameter.numel() + 1)
    return largest


def to_c(model: nn.Module, folder: str | os.PathLike, name: str = "lnn") -> CExport:
    r"""Write a dependency-free C99 source and header that run one step of ``model``.

    The generated ``<name>.c`` needs only ``<math.h>``, ``<stddef.h>`` and ``<stdint.h>``.
    Weights are ``static const`` float32 arrays with the wiring's masks folded in (absent
    synapses are not stored), and the step function allocates nothing: its working arrays
    have sizes fixed at generation time. The interface, in ``<name>.h``::

        typedef struct { float values[<NAME>_STATE_SIZE]; } <name>_state_t;
        void <name>_reset(<name>_state_t *state);               /* zeros, like the layer */
        void <name>_step(<name>_state_t *state, const float input[<NAME>_INPUT_SIZE],
                         float dt, float output[<NAME>_OUTPUT_SIZE]);

    The state holds ``h``, then ``c`` with mixed memory, in the same order as
    ``StepModule``'s state tensor; ``dt`` is the elapsed time of the step (non-negative, not
    checked). Supported: ``LTCCell`` with the "fused", "euler" or "rk4" solver (the LTC's
    semi-implicit step or explicit sub-steps), ``CfCCell`` in every mode and activation,
    ``WiredCfCCell`` with either connectivity, and the layers around them (mixed memory and
    ``proj_size``). The computation is float32 whatever the model's dtype.

    Args:
        model: a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer, or a cell; not modified.
        folder: an existing folder to write ``<name>.c`` and ``<name>.h`` into.
        name: the file name and the prefix of every C symbol; a C identifier.

    Returns:
        a ``CExport`` with the paths and the sizes.

    Raises:
        ValueError: an unsupported option (the adaptive or a custom solver), an invalid name.
        OSError: the folder does not exist or cannot be written.
    """
    owner = "to_c"
    name = _check_name(name)
    folder = check_output_folder(folder, owner)
    cell, lstm, proj = unpack_model(model, owner)
    if isinstance(cell, LTCCell):
        check_c_solver(cell)
    model = frozen_copy(model).float()
    cell, lstm, proj = unpack_model(model, owner)

    input_size = cell.input_size if isinstance(cell, CfCCell) else cell.sensory_size
    units = cell.state_size
    state_size = units * (2 if lstm is not None else 1)
    output_size = proj.out_features if proj is not None else cell.motor_size
    writer = CWriter(name, index_type_for(_largest_index(model, input_size, units)))

    # Statements of the step, in the order the layer runs them.
    body: list[str] = []
    helpers_extra = ""
    if lstm is not None:
        body += lstm_block(writer, lstm)
    if isinstance(cell, LTCCell):
        helpers_extra = ltc_helpers(writer, cell)
        body += ltc_block(writer, cell)
        kind = f"LTC ({cell.solver.name} solver, {cell.ode_unfolds} sub-steps)"
    elif isinstance(cell, WiredCfCCell):
        body += wired_cfc_block(writer, cell)
        kind = f"wired CfC (mode {cell.mode!r})"
    else:
        body += cfc_block(writer, cell)
        kind = f"dense CfC (mode {cell.mode!r})"
    body += output_block(writer, cell, proj)
    description = f"{kind}; {units} neurons, input size {input_size}, output size {output_size}"
    if lstm is not None:
        description += ", mixed memory"
    if proj is not None:
        description += ", projected output"

    macro = name.upper()
    header_path = folder / f"{name}.h"
    source_path = folder / f"{name}.c"
    header_path.write_text(_header(name, macro, description, input_size, output_size, state_size))
    source_path.write_text(
        _source(name, macro, description, writer, helpers_extra, body, units, lstm is not None)
    )
    return CExport(
        source=source_path,
        header=header_path,
        name=name,
        input_size=input_size,
        output_size=output_size,
        state_size=state_size,
        const_bytes=writer.const_bytes,
        state_bytes=4 * state_size,
    )


def _header(
    name: str, macro: str, description: str, inputs: int, outputs: int, state_size: int
) -> str:
    from torchlnn import __version__

    return f"""/* {name}.h: one step of a liquid network in C99.
 * {description}.
 * Generated by torchlnn {__version__} (torchlnn.export.to_c); regenerate instead of editing.
 */
#ifndef {macro}_H
#define {macro}_H

#ifdef __cplusplus
extern "C" {{
#endif

#define {macro}_INPUT_SIZE {inputs}
#define {macro}_OUTPUT_SIZE {outputs}
#define {macro}_STATE_SIZE {state_size}

/* The network's state between steps: the neuron states h, then the LSTM memory c when the
   model has mixed memory. */
typedef struct {{
    float values[{macro}_STATE_SIZE];
}} {name}_state_t;

/* Set the state to zeros, the start of an episode. */
void {name}_reset({name}_state_t *state);

/* Advance by one input step of elapsed time dt (>= 0, in the unit the model was trained with)
   and write the outputs. Uses a fixed amount of stack and allocates nothing. */
void {name}_step({name}_state_t *state, const float input[{macro}_INPUT_SIZE], float dt,
{" " * (len(name) + 10)}float output[{macro}_OUTPUT_SIZE]);

#ifdef __cplusplus
}}
#endif

#endif /* {macro}_H */
"""


def _source(
    name: str,
    macro: str,
    description: str,
    writer: CWriter,
    helpers_extra: str,
    body: list[str],
    units: int,
    mixed_memory: bool,
) -> str:
    from torchlnn import __version__

    arrays = "\n\n".join(writer.arrays)
    helpers = helper_functions(name, writer.index_type, writer.helpers)
    step_body = "\n".join(("    " + line) if line else "" for line in body)
    memory = f"    float *c = state->values + {units};\n" if mixed_memory else ""
    return f"""/* {name}.c: one step of a liquid network in C99.
 * {description}.
 * Generated by torchlnn {__version__} (torchlnn.export.to_c); regenerate instead of editing.
 * Weights are float32 constants with the wiring's masks folded in.
 */
#include "{name}.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

{arrays}

{helpers}
{helpers_extra}
void {name}_reset({name}_state_t *state)
{{
    int i;
    for (i = 0; i < {macro}_STATE_SIZE; ++i) {{
        state->values[i] = 0.0f;
    }}
}}

void {name}_step({name}_state_t *state, const float input[{macro}_INPUT_SIZE], float dt,
{" " * (len(name) + 10)}float output[{macro}_OUTPUT_SIZE])
{{
    float *h = state->values;
{memory}
{step_body}
}}
"""


def write_c_runner(export: CExport) -> Path:
    """Write ``<name>_runner.c``, a desktop program that checks and times the generated step.

    It is a test harness, not part of the model: it uses stdio and the POSIX clock. Build it
    with the model, e.g. ``cc -std=c99 -O2 lnn.c lnn_runner.c -lm -o lnn_runner``, then:

    * ``lnn_runner run INPUT OUTPUT``: INPUT holds an int32 step count T, then T records of
      float32 ``dt`` and ``input[I]``; OUTPUT receives T records of float32 ``output[O]``,
      then the final state (S floats). Native byte order; the state starts at zeros.
    * ``lnn_runner bench STEPS``: runs STEPS steps and prints the mean nanoseconds per step.

    Returns:
        the path of the runner's source, next to the model's source.
    """
    name, macro = export.name, export.name.upper()
    path = export.source.with_name(f"{name}_runner.c")
    path.write_text(
        f"""/* {name}_runner.c: reads inputs from a file, runs {name}_step and writes the outputs,
 * or times the step. A desktop test harness generated by torchlnn.export.write_c_runner. */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "{name}.h"

static int run(const char *input_path, const char *output_path)
{{
    {name}_state_t state;
    float input[{macro}_INPUT_SIZE], output[{macro}_OUTPUT_SIZE], dt;
    int32_t steps, t;
    FILE *in = fopen(input_path, "rb");
    FILE *out = fopen(output_path, "wb");
    if (!in || !out || fread(&steps, sizeof steps, 1, in) != 1) {{
        fprintf(stderr, "cannot open %s or %s, or read the step count\\n", input_path,
                output_path);
        return 1;
    }}
    {name}_reset(&state);
    for (t = 0; t < steps; ++t) {{
        if (fread(&dt, sizeof dt, 1, in) != 1 ||
            fread(input, sizeof input[0], {macro}_INPUT_SIZE, in) != {macro}_INPUT_SIZE) {{
            fprintf(stderr, "input file ended at step %ld of %ld\\n", (long)t, (long)steps);
            return 1;
        }}
        {name}_step(&state, input, dt, output);
        fwrite(output, sizeof output[0], {macro}_OUTPUT_SIZE, out);
    }}
    fwrite(state.values, sizeof state.values[0], {macro}_STATE_SIZE, out);
    fclose(in);
    return fclose(out) == 0 ? 0 : 1;
}}

static int bench(long steps)
{{
    {name}_state_t state;
    float input[{macro}_INPUT_SIZE], output[{macro}_OUTPUT_SIZE];
    volatile float sink = 0.0f;
    struct timespec start, stop;
    long t;
    int i;
    for (i = 0; i < {macro}_INPUT_SIZE; ++i) {{
        input[i] = 0.01f * (float)(i % 7);
    }}
    {name}_reset(&state);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (t = 0; t < steps; ++t) {{
        {name}_step(&state, input, 0.1f, output);
        sink += output[0];
    }}
    clock_gettime(CLOCK_MONOTONIC, &stop);
    printf("%.3f\\n", ((double)(stop.tv_sec - start.tv_sec) * 1e9 +
                       (double)(stop.tv_nsec - start.tv_nsec)) / (double)steps);
    return sink == sink ? 0 : 1; /* a NaN output fails the run */
}}

int main(int argc, char **argv)
{{
    if (argc == 4 && strcmp(argv[1], "run") == 0) {{
        return run(argv[2], argv[3]);
    }}
    if (argc == 3 && strcmp(argv[1], "bench") == 0) {{
        return bench(atol(argv[2]));
    }}
    fprintf(stderr, "usage: %s run INPUT OUTPUT | %s bench STEPS\\n", argv[0], argv[0]);
    return 2;
}}
"""
    )
    return path
