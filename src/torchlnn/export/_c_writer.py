"""Building blocks of the generated C: constant arrays, literals and the matrix helpers."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VALUES_PER_LINE = 6


def float_literal(value: float) -> str:
    """Return a C float literal that reads back as exactly this float32 value."""
    if not math.isfinite(value):
        raise ValueError(
            f"to_c: the model has a non-finite weight ({value}); it cannot be written as C. "
            f"Check the checkpoint for NaN or infinity."
        )
    text = str(np.float32(value))  # numpy's shortest text that reads back as this float32
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


class CWriter:
    """Collects the constant arrays and the step's statements of one generated C file.

    Every array is ``static const``, so a microcontroller toolchain keeps it in flash.
    ``const_bytes`` counts the bytes of all arrays.

    Args:
        prefix: the model's name, used as the prefix of every C symbol.
        index_type: the C type of index arrays, wide enough for the largest index.
    """

    def __init__(self, prefix: str, index_type: str):
        self.prefix = prefix
        self.index_type = index_type
        self.arrays: list[str] = []
        self.const_bytes = 0
        self.scratch: dict[str, int] = {}
        self.helpers: set[str] = set()

    def floats(self, name: str, values: Tensor | np.ndarray | Iterable[float]) -> str:
        """Add a ``static const float`` array and return its C name."""
        flat = np.asarray(
            values.detach().cpu().double().numpy() if isinstance(values, Tensor) else values,
            dtype=np.float64,
        ).reshape(-1)
        literals = [float_literal(value) for value in flat]
        return self._add(name, "float", literals, 4)

    def indices(self, name: str, values: Iterable[int]) -> str:
        """Add a ``static const`` index array and return its C name."""
        literals = [str(int(value)) for value in values]
        size = 2 if self.index_type == "uint16_t" else 4
        return self._add(name, self.index_type, literals, size)

    def _add(self, name: str, ctype: str, literals: list[str], item_bytes: int) -> str:
        if not literals:
            raise ValueError(f"internal error: the C array {name!r} would be empty")
        c_name = f"{self.prefix}_{name}"
        lines = [
            "    " + ", ".join(literals[start : start + VALUES_PER_LINE]) + ","
            for start in range(0, len(literals), VALUES_PER_LINE)
        ]
        self.arrays.append(
            f"static const {ctype} {c_name}[{len(literals)}] = {{\n" + "\n".join(lines) + "\n};"
        )
        self.const_bytes += item_bytes * len(literals)
        return c_name

    def buffer(self, name: str, size: int) -> str:
        """Declare a float working array of the step function (on the stack); return its name."""
        if size < 1:
            raise ValueError(f"internal error: the working array {name!r} would be empty")
        self.scratch[name] = max(size, self.scratch.get(name, 0))
        return name


def index_type_for(largest_index: int) -> str:
    """Return the narrowest unsigned C99 type that holds ``largest_index``."""
    return "uint16_t" if largest_index < 2**16 else "uint32_t"


def sparse_rows(matrix: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Return the compressed sparse rows of ``matrix``: row starts, column indices, values.

    Zero entries are dropped: a masked-out synapse contributes exactly 0 in PyTorch as well.
    """
    row_start = [0]
    columns: list[int] = []
    values: list[float] = []
    for row in matrix:
        nonzero = np.flatnonzero(row)
        columns.extend(int(column) for column in nonzero)
        values.extend(float(row[column]) for column in nonzero)
        row_start.append(len(columns))
    return row_start, columns, np.asarray(values, dtype=np.float64)


def as_numpy(tensor: Tensor) -> np.ndarray:
    """Return a float32 tensor's values as float64 numpy (exact), detached and on the CPU."""
    return tensor.detach().to(device="cpu", dtype=torch.float32).double().numpy()


def helper_functions(prefix: str, index_type: str, used: set[str]) -> str:
    """Return the static C helpers in ``used``: "sigmoid", "dense" and "sparse" products.

    Only the used ones are emitted, because an unused static function is a compiler warning.
    """
    texts = {
        "sigmoid": f"""static float {prefix}_sigmoid(float x)
{{
    return 1.0f / (1.0f + expf(-x));
}}
""",
        "dense": f"""/* out[j] = base[j] + sum_k w[j * cols + k] * x[k], where base is out itself
   when accumulate is set, else bias (zeros when bias is NULL). */
static void {prefix}_dense(float *out, const float *w, const float *bias, const float *x,
                           int rows, int cols, int accumulate)
{{
    int j, k;
    for (j = 0; j < rows; ++j) {{
        float sum = 0.0f;
        for (k = 0; k < cols; ++k) {{
            sum += w[j * cols + k] * x[k];
        }}
        out[j] = (accumulate ? out[j] : (bias ? bias[j] : 0.0f)) + sum;
    }}
}}
""",
        "sparse": f"""/* The same product for a matrix in compressed sparse rows: the nonzero
   values of row j are values[row_start[j]] .. values[row_start[j + 1] - 1], in the
   columns columns[]. */
static void {prefix}_sparse(float *out, const {index_type} *row_start,
                            const {index_type} *columns, const float *values,
                            const float *bias, const float *x, int rows, int accumulate)
{{
    int j;
    {index_type} k;
    for (j = 0; j < rows; ++j) {{
        float sum = 0.0f;
        for (k = row_start[j]; k < row_start[j + 1]; ++k) {{
            sum += values[k] * x[columns[k]];
        }}
        out[j] = (accumulate ? out[j] : (bias ? bias[j] : 0.0f)) + sum;
    }}
}}
""",
    }
    return "\n".join(texts[name] for name in ("sigmoid", "dense", "sparse") if name in used)
