"""The statements of the generated C step, one function per part of a torchlnn layer.

Each function adds its weights to the ``CWriter`` and returns C statements (a list of lines)
that update the state in place. Inside the step function, ``input`` is the input vector (I),
``dt`` the elapsed time, ``h`` the neuron states (N) and ``c`` the LSTM memory (N).

The arithmetic follows the PyTorch code term by term (same operations, same association), so
the C output differs from PyTorch's only by the summation order inside matrix products and by
the last bit of ``expf``/``tanhf``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torchlnn.cells import CfCCell, LTCCell, MixedMemoryLSTMCell, WiredCfCCell
from torchlnn.solvers import RK4, Euler, Fused

from ._c_writer import CWriter, as_numpy, float_literal, sparse_rows

C_SOLVERS = {Fused: "fused", Euler: "euler", RK4: "rk4"}

# C expressions of the CfC backbone activations, with ``x`` the pre-activation.
ACTIVATIONS_C = {
    "lecun_tanh": "1.7159f * tanhf(0.666f * x)",
    "tanh": "tanhf(x)",
    "relu": "(x > 0.0f ? x : 0.0f)",
    "gelu": "x * 0.5f * (1.0f + erff(x * 0.70710678118654752f))",
    "silu": "x / (1.0f + expf(-x))",
}


def check_c_solver(cell: LTCCell) -> str:
    """Return the name of the LTC cell's solver if C can run it, else raise ValueError."""
    name = C_SOLVERS.get(type(cell.solver))
    if name is None:
        raise ValueError(
            f"to_c: the LTC solver {getattr(cell.solver, 'name', '')!r} ({cell.solver!r}) has "
            f"no C version. C is generated for "
            f"'fused', 'euler' and 'rk4', which take a fixed number of sub-steps; 'adaptive' "
            f"takes a state-dependent number, so its time per step is unbounded on a "
            f"microcontroller. The weights do not depend on the solver: rebuild the layer with "
            f"solver='fused' or 'rk4', load the state dict and export that."
        )
    return name


# ---------------------------------------------------------------------------------- LTC


def ltc_helpers(writer: CWriter, cell: LTCCell) -> str:
    """Add the LTC's synapses and return the static function that evaluates its terms."""
    prefix = writer.prefix
    writer.helpers.add("sigmoid")
    units = cell.state_size
    with torch.no_grad():
        w = cell.w  # (N_src, N_dst), zero where the wiring has no synapse
        w_erev = w * cell.erev
    # np.nonzero walks the mask row by row (by source, then target): each target accumulates
    # its synapses in increasing source order, as PyTorch's sum over the source axis does.
    sources, targets = np.nonzero(as_numpy(cell.sparsity_mask))

    lines = [
        "/* The LTC's synaptic terms at state v: num = base_num + sum_j g_j(v) E_j and",
        "   den = base_den + sum_j g_j(v), with g_j(v) = w_j sigmoid(sigma_j (v_src - mu_j)). */",
        f"static void {prefix}_ltc_terms(const float *v, const float *base_num, "
        f"const float *base_den,",
        " " * len(f"static void {prefix}_ltc_terms(") + "float *num, float *den)",
        "{",
        "    int i;",
    ]
    lines += [
        f"    for (i = 0; i < {units}; ++i) {{",
        "        num[i] = 0.0f;",
        "        den[i] = 0.0f;",
        "    }",
    ]

    if len(sources):
        source = writer.indices("synapse_source", sources)
        target = writer.indices("synapse_target", targets)
        sigma = writer.floats("synapse_sigma", as_numpy(cell.sigma)[sources, targets])
        mu = writer.floats("synapse_mu", as_numpy(cell.mu)[sources, targets])
        weight = writer.floats("synapse_w", as_numpy(w)[sources, targets])
        weight_erev = writer.floats("synapse_w_erev", as_numpy(w_erev)[sources, targets])
        lines += [
            "    {",
            "        int s;",
            f"        for (s = 0; s < {len(sources)}; ++s) {{",
            f"            const float a = "
            f"{prefix}_sigmoid({sigma}[s] * (v[{source}[s]] - {mu}[s]));",
            f"            num[{target}[s]] += a * {weight_erev}[s];",
            f"            den[{target}[s]] += a * {weight}[s];",
            "        }",
            "    }",
        ]

    lines += [
        f"    for (i = 0; i < {units}; ++i) {{",
        "        num[i] = base_num[i] + num[i];",
        "        den[i] = base_den[i] + den[i];",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def ltc_block(writer: CWriter, cell: LTCCell) -> list[str]:
    """Return the statements of one LTC step (the solver's sub-steps) on ``h``."""
    prefix = writer.prefix
    solver = check_c_solver(cell)
    units, inputs = cell.state_size, cell.sensory_size
    unfolds = cell.ode_unfolds
    with torch.no_grad():
        cm = writer.floats("cm", cell.cm)
        gleak = writer.floats("gleak", cell.gleak)
        gleak_vleak = writer.floats("gleak_vleak", cell.gleak * cell.vleak)
        sensory_w = as_numpy(cell.sensory_w)

    lines = [f"/* LTC cell, {solver} solver, {unfolds} sub-steps of dt / {unfolds}. */", "{"]
    lines += [
        f"    float base_num[{units}], base_den[{units}], num[{units}], den[{units}];",
        f"    const float sub_dt = dt / {float_literal(unfolds)};",
        "    int i, unfold;",
    ]

    # Map the inputs: u = input * input_w + input_b (the parts the mapping has).
    mapping = cell.input_mapping
    if mapping == "identity":
        u = "input"
    else:
        u = "u"
        input_w = writer.floats("input_w", cell.input_w)
        expression = f"input[i] * {input_w}[i]"
        if mapping == "affine":
            expression += f" + {writer.floats('input_b', cell.input_b)}[i]"
        lines += [
            f"    float u[{inputs}];",
            f"    for (i = 0; i < {inputs}; ++i) {{",
            f"        u[i] = {expression};",
            "    }",
        ]

    # Sensory synapses: they depend on the input only, so they are summed once per step.
    lines += [
        f"    for (i = 0; i < {units}; ++i) {{",
        "        base_num[i] = 0.0f;",
        "        base_den[i] = 0.0f;",
        "    }",
    ]
    sources, targets = np.nonzero(as_numpy(cell.sensory_sparsity_mask))
    if len(sources):
        source = writer.indices("sensory_source", sources)
        target = writer.indices("sensory_target", targets)
        sigma = writer.floats("sensory_sigma", as_numpy(cell.sensory_sigma)[sources, targets])
        mu = writer.floats("sensory_mu", as_numpy(cell.sensory_mu)[sources, targets])
        weight = writer.floats("sensory_w", sensory_w[sources, targets])
        erev = writer.floats("sensory_erev", as_numpy(cell.sensory_erev)[sources, targets])
        lines += [
            "    {",
            "        int s;",
            f"        for (s = 0; s < {len(sources)}; ++s) {{",
            f"            const float g = {weight}[s] * "
            f"{prefix}_sigmoid({sigma}[s] * ({u}[{source}[s]] - {mu}[s]));",
            f"            base_num[{target}[s]] += g * {erev}[s];",
            f"            base_den[{target}[s]] += g;",
            "        }",
            "    }",
        ]
    lines += [
        f"    for (i = 0; i < {units}; ++i) {{",
        f"        base_num[i] += {gleak_vleak}[i];",
        f"        base_den[i] += {gleak}[i];",
        "    }",
    ]

    # The solver's sub-steps.
    terms = f"{prefix}_ltc_terms"
    lines.append(f"    for (unfold = 0; unfold < {unfolds}; ++unfold) {{")
    if solver == "fused":
        epsilon = float_literal(cell.solver.epsilon)
        lines += [
            f"        {terms}(h, base_num, base_den, num, den);",
            f"        for (i = 0; i < {units}; ++i) {{",
            f"            h[i] = ({cm}[i] * h[i] + sub_dt * num[i]) / "
            f"({cm}[i] + sub_dt * (den[i] + {epsilon}));",
            "        }",
        ]
    elif solver == "euler":
        lines += [
            f"        {terms}(h, base_num, base_den, num, den);",
            f"        for (i = 0; i < {units}; ++i) {{",
            f"            h[i] = h[i] + sub_dt * ((num[i] - den[i] * h[i]) / {cm}[i]);",
            "        }",
        ]
    else:
        lines += rk4_lines(terms, cm, units)
    lines += ["    }", "}"]
    return lines


def rk4_lines(terms: str, cm: str, units: int) -> list[str]:
    """Return one classical RK4 sub-step on ``h``, with the same association as PyTorch's."""

    def field(state: str, k: str) -> list[str]:
        return [
            f"            {terms}({state}, base_num, base_den, num, den);",
            f"            for (i = 0; i < {units}; ++i) {{",
            f"                {k}[i] = (num[i] - den[i] * {state}[i]) / {cm}[i];",
            "            }",
        ]

    def shifted(k: str, scale: str) -> list[str]:
        return [
            f"            for (i = 0; i < {units}; ++i) {{",
            f"                v[i] = h[i] + {scale} * {k}[i];",
            "            }",
        ]

    lines = [
        "        {",
        f"            float k1[{units}], k2[{units}], k3[{units}], k4[{units}], v[{units}];",
    ]
    lines += field("h", "k1") + shifted("k1", "0.5f * sub_dt") + field("v", "k2")
    lines += shifted("k2", "0.5f * sub_dt") + field("v", "k3")
    lines += shifted("k3", "sub_dt") + field("v", "k4")
    lines += [
        f"            for (i = 0; i < {units}; ++i) {{",
        "                h[i] = h[i] + (sub_dt / 6.0f) * "
        "(k1[i] + 2.0f * k2[i] + 2.0f * k3[i] + k4[i]);",
        "            }",
        "        }",
    ]
    return lines


# ---------------------------------------------------------------------------------- CfC


def closed_form_lines(
    writer: CWriter,
    mode: str,
    heads: str,
    size: int,
    target: str,
    w_tau: str | None,
    amplitude: str,
) -> list[str]:
    """Return the CfC closed form for ``size`` neurons, writing neuron ``j`` to ``target``.

    ``heads`` contains [f_1, f_2, t_a, t_b] (4 * size values), or f_1 alone in "pure" mode.
    ``target`` is a C lvalue with ``j`` in it, such as ``h[j]``.
    """
    prefix = writer.prefix
    lines = [f"    for (j = 0; j < {size}; ++j) {{"]
    if mode == "pure":
        lines += [
            f"        const float f1 = {heads}[j];",
            f"        {target} = (-{amplitude}[j]) * expf((-dt) * (fabsf({w_tau}[j]) + "
            f"fabsf(f1))) * f1 + {amplitude}[j];",
        ]
    else:
        writer.helpers.add("sigmoid")
        lines += [
            f"        const float f1 = {heads}[j], f2 = {heads}[{size} + j];",
            f"        const float gate = {prefix}_sigmoid({heads}[{2 * size} + j] * dt + "
            f"{heads}[{3 * size} + j]);",
        ]
        if mode == "no_gate":
            lines.append(f"        {target} = tanhf(f1) + gate * tanhf(f2);")
        else:
            lines.append(f"        {target} = tanhf(f1) * (1.0f - gate) + gate * tanhf(f2);")
    lines.append("    }")
    return lines


def cfc_block(writer: CWriter, cell: CfCCell) -> list[str]:
    """Return the statements of one dense CfC step (backbone, heads, closed form) on ``h``."""
    prefix = writer.prefix
    writer.helpers.add("dense")
    inputs, units = cell.input_size, cell.hidden_size
    linears = [module for module in cell.backbone if isinstance(module, nn.Linear)]
    first = linears[0] if linears else cell.heads
    width = first.out_features

    lines = [f"/* Dense CfC cell, mode {cell.mode!r}, {len(linears)} backbone layers. */", "{"]
    lines.append("    int j;")

    # The first linear map reads [input; h] as W_u input + b + W_h h, as prepare_inputs does.
    weight = as_numpy(first.weight)
    w_u = writer.floats("first_w_input", weight[:, :inputs])
    w_h = writer.floats("first_w_state", weight[:, inputs:])
    bias = writer.floats("first_b", first.bias)
    lines += [
        f"    float z0[{width}];",
        f"    {prefix}_dense(z0, {w_u}, {bias}, input, {width}, {inputs}, 0);",
        f"    {prefix}_dense(z0, {w_h}, NULL, h, {width}, {units}, 1);",
    ]

    # The rest of the backbone: activation after every linear map, dropout off (eval mode).
    current, current_width = "z0", width
    activation = ACTIVATIONS_C[cell.backbone_activation]
    for index in range(len(linears)):
        lines += [
            f"    for (j = 0; j < {current_width}; ++j) {{",
            f"        const float x = {current}[j];",
            f"        {current}[j] = {activation};",
            "    }",
        ]
        following = linears[index + 1] if index + 1 < len(linears) else cell.heads
        name = f"z{index + 1}"
        rows = following.out_features
        weight = writer.floats(f"layer{index + 1}_w", following.weight)
        bias = writer.floats(f"layer{index + 1}_b", following.bias)
        lines += [
            f"    float {name}[{rows}];",
            f"    {prefix}_dense({name}, {weight}, {bias}, {current}, {rows}, {current_width}, 0);",
        ]
        current, current_width = name, rows

    w_tau = writer.floats("w_tau", cell.w_tau) if cell.mode == "pure" else None
    amplitude = writer.floats("A", cell.A) if cell.mode == "pure" else ""
    lines += closed_form_lines(writer, cell.mode, current, units, "h[j]", w_tau, amplitude)
    lines.append("}")
    return lines


def wired_cfc_block(writer: CWriter, cell: WiredCfCCell) -> list[str]:
    """Return the statements of one wired CfC step, layer by layer, on ``h``.

    Reads each layer's parameters and index buffers (``layers.<l>.weight``, ``mask``,
    ``bias``, ``x_sources``, ``fresh_sources``, ``state_sources``, ``neuron_ids``) and folds
    the mask into the weights, keeping only the synapses that exist.
    """
    prefix = writer.prefix
    units = cell.state_size
    lines = [
        f"/* Wired CfC cell, mode {cell.mode!r}, layers of {cell.layer_sizes} neurons updated in "
        f"order; a layer reads the new state of the layer before it. */",
        "{",
        f"    float h_new[{units}];",
        "    int j;",
    ]
    previous_ids: list[int] = []
    for index, layer in enumerate(cell.layers):
        state = {name: tensor for name, tensor in layer.state_dict().items()}
        ids = [int(i) for i in state["neuron_ids"]]
        x_sources = [int(i) for i in state["x_sources"]]
        fresh_sources = [int(i) for i in state["fresh_sources"]]
        state_sources = [int(i) for i in state["state_sources"]]
        size = len(ids)
        rows = state["weight"].shape[0]
        masked = as_numpy(state["weight"] * state["mask"])  # (rows, sources)
        n_x, n_fresh = len(x_sources), len(fresh_sources)

        z = f"z{index}"
        bias = writer.floats(f"layer{index}_b", state["bias"])
        lines.append(f"    float {z}[{rows}];")

        # PyTorch's order: bias + input synapses, then + previous states, then + fresh states.
        segments = (
            ("input", "input", masked[:, :n_x], x_sources),
            ("state", "h", masked[:, n_x + n_fresh :], state_sources),
            (
                "fresh",
                "h_new",
                masked[:, n_x : n_x + n_fresh],
                [previous_ids[p] for p in fresh_sources],
            ),
        )
        for kind, vector, matrix, vector_index in segments:
            row_start, columns, values = sparse_rows(matrix)
            if not columns:
                if kind == "input":
                    lines.append(f"    for (j = 0; j < {rows}; ++j) {{ {z}[j] = {bias}[j]; }}")
                continue
            writer.helpers.add("sparse")
            start = writer.indices(f"layer{index}_{kind}_row_start", row_start)
            cols = writer.indices(
                f"layer{index}_{kind}_columns", [vector_index[c] for c in columns]
            )
            vals = writer.floats(f"layer{index}_{kind}_values", values)
            first = kind == "input"
            lines.append(
                f"    {prefix}_sparse({z}, {start}, {cols}, {vals}, "
                f"{bias if first else 'NULL'}, {vector}, {rows}, {0 if first else 1});"
            )

        ids_name = writer.indices(f"layer{index}_neuron_ids", ids)
        w_tau, amplitude = None, ""
        if cell.mode == "pure":
            w_tau = writer.floats(f"layer{index}_w_tau", state["w_tau"])
            amplitude = writer.floats(f"layer{index}_A", state["A"])
        target = f"h_new[{ids_name}[j]]"
        lines += closed_form_lines(writer, cell.mode, z, size, target, w_tau, amplitude)
        previous_ids = ids

    lines += [
        f"    for (j = 0; j < {units}; ++j) {{",
        "        h[j] = h_new[j];",
        "    }",
        "}",
    ]
    return lines


# ---------------------------------------------------------------------------------- extras


def lstm_block(writer: CWriter, lstm: MixedMemoryLSTMCell) -> list[str]:
    """Return the mixed-memory LSTM update of ``h`` and ``c``, which runs before the cell."""
    prefix = writer.prefix
    writer.helpers.update(("dense", "sigmoid"))
    units, inputs = lstm.hidden_size, lstm.input_size
    w_in = writer.floats("lstm_input_w", lstm.input_map.weight)
    b_in = writer.floats("lstm_input_b", lstm.input_map.bias)
    w_rec = writer.floats("lstm_recurrent_w", lstm.recurrent_map.weight)
    return [
        "/* Mixed memory: an LSTM updates h and c before the liquid cell. */",
        "{",
        f"    float z[{4 * units}];",
        "    int i;",
        f"    {prefix}_dense(z, {w_in}, {b_in}, input, {4 * units}, {inputs}, 0);",
        f"    {prefix}_dense(z, {w_rec}, NULL, h, {4 * units}, {units}, 1);",
        f"    for (i = 0; i < {units}; ++i) {{",
        f"        c[i] = c[i] * {prefix}_sigmoid(z[{2 * units} + i] + 1.0f) + "
        f"tanhf(z[i]) * {prefix}_sigmoid(z[{units} + i]);",
        f"        h[i] = tanhf(c[i]) * {prefix}_sigmoid(z[{3 * units} + i]);",
        "    }",
        "}",
    ]


def readout_matrix(cell: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(R, r0)`` with ``cell.readout(h) == R @ h + r0``, found by probing in float64.

    Every torchlnn readout is affine (an LTC's mapped motor neurons, a CfC's selected
    neurons); a readout that is not raises ValueError.
    """
    import copy

    units = cell.state_size
    probe = copy.deepcopy(cell).double()
    with torch.no_grad():
        offset = probe.readout(torch.zeros(1, units, dtype=torch.float64))[0]  # (M,)
        basis = torch.eye(units, dtype=torch.float64)
        matrix = (probe.readout(basis) - offset).T  # (M, N)
        doubled = probe.readout(2.0 * basis) - offset
    if not torch.allclose(doubled, 2.0 * matrix.T, rtol=1e-9, atol=1e-12):
        raise ValueError(
            f"to_c: the readout of {type(cell).__name__} is not affine in the state, so it "
            f"cannot be written as a matrix."
        )
    return matrix.numpy(), offset.numpy()


def output_block(writer: CWriter, cell: nn.Module, proj: nn.Linear | None) -> list[str]:
    """Return the readout of ``h`` into ``output``, through the projection when there is one."""
    prefix = writer.prefix
    writer.helpers.add("sparse")
    matrix, offset = readout_matrix(cell)
    motors = matrix.shape[0]
    row_start, columns, values = sparse_rows(matrix)
    start = writer.indices("readout_row_start", row_start)
    cols = writer.indices("readout_columns", columns)
    vals = writer.floats("readout_values", values)
    bias = writer.floats("readout_b", offset) if np.any(offset) else "NULL"
    target = "motor" if proj is not None else "output"
    lines = ["/* Output: the motor neurons, mapped. */", "{"]
    if proj is not None:
        lines.append(f"    float motor[{motors}];")
    lines.append(f"    {prefix}_sparse({target}, {start}, {cols}, {vals}, {bias}, h, {motors}, 0);")
    if proj is not None:
        writer.helpers.add("dense")
        weight = writer.floats("proj_w", proj.weight)
        proj_bias = writer.floats("proj_b", proj.bias)
        lines.append(
            f"    {prefix}_dense(output, {weight}, {proj_bias}, motor, {proj.out_features}, "
            f"{motors}, 0);"
        )
    lines.append("}")
    return lines
