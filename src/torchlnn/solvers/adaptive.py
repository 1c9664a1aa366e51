"""An adaptive Dormand-Prince 5(4) solver, the reference for tests and analysis."""

from __future__ import annotations

from fractions import Fraction as F

import torch
from torch import Tensor

from ._base import Solver, Terms, TimeStep, vector_field

# Dormand-Prince 5(4) Butcher tableau (Dormand and Prince, 1980). Row i of A gives the weights
# of the earlier stages in stage i; B is the fifth-order solution, B_ERROR the difference
# between it and the embedded fourth-order one.
C = [F(0), F(1, 5), F(3, 10), F(4, 5), F(8, 9), F(1), F(1)]
A = [
    [],
    [F(1, 5)],
    [F(3, 40), F(9, 40)],
    [F(44, 45), F(-56, 15), F(32, 9)],
    [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
    [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
    [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)],
]
B = [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), F(0)]
B_FOURTH = [
    F(5179, 57600),
    F(0),
    F(7571, 16695),
    F(393, 640),
    F(-92097, 339200),
    F(187, 2100),
    F(1, 40),
]
B_ERROR = [b - b4 for b, b4 in zip(B, B_FOURTH)]

# The tableau checks itself: each row sums to its node, both solutions are consistent, and the
# last stage equals the fifth-order solution (first same as last).
assert all(sum(row) == c for row, c in zip(A, C))
assert sum(B) == 1 and sum(B_FOURTH) == 1
assert A[6] == B[:6]


class Adaptive(Solver):
    """Dormand-Prince 5(4) with error control, integrating each input step to a tolerance.

    Per-sample elapsed times are handled by integrating ``dv/ds = dt * f(v)`` over
    ``s in [0, 1]``, so the whole batch shares one step grid. A step is accepted when the
    root-mean-square of its error estimate, scaled by ``atol + rtol * |v|``, is at most 1 for
    every sample. Step-size decisions are made without gradient tracking; the gradient flows
    through the accepted stages. Meant as a reference, not for training speed.

    Args:
        rtol: relative tolerance.
        atol: absolute tolerance.
        max_steps: accepted plus rejected steps allowed per input step before RuntimeError.
    """

    name = "adaptive"
    order = 5

    def __init__(self, rtol: float = 1e-7, atol: float = 1e-9, max_steps: int = 100_000):
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self._a = [[float(x) for x in row] for row in A]
        self._b = [float(x) for x in B]
        self._b_error = [float(x) for x in B_ERROR]

    def integrate(self, terms: Terms, cm: Tensor, v: Tensor, dt: TimeStep, unfolds: int) -> Tensor:
        def field(state: Tensor) -> Tensor:
            return dt * vector_field(terms, cm, state)

        s, h = 0.0, 1.0 / max(unfolds, 1)
        k_first = field(v)
        for _ in range(self.max_steps):
            if s >= 1.0:
                return v
            h = min(h, 1.0 - s)

            # Stages 2..7; the seventh is evaluated at the fifth-order solution.
            stages = [k_first]
            for row in self._a[1:]:
                increment = sum(weight * k for weight, k in zip(row, stages) if weight != 0.0)
                stages.append(field(v + h * increment))
            v_next = v + h * sum(b * k for b, k in zip(self._b, stages) if b != 0.0)
            error = h * sum(e * k for e, k in zip(self._b_error, stages) if e != 0.0)

            with torch.no_grad():
                scale = self.atol + self.rtol * torch.maximum(v.abs(), v_next.abs())
                error_norm = float((error / scale).pow(2).mean(dim=-1).sqrt().max())
            if error_norm <= 1.0:
                s += h
                v, k_first = v_next, stages[-1]
            factor = 5.0 if error_norm == 0.0 else 0.9 * error_norm ** (-1.0 / 5.0)
            h *= min(5.0, max(0.2, factor))
        raise RuntimeError(
            f"The adaptive solver needed more than max_steps={self.max_steps} steps for one "
            f"input step (rtol={self.rtol:g}, atol={self.atol:g}). Loosen the tolerances or "
            f"raise max_steps."
        )

    def __repr__(self) -> str:
        return f"Adaptive(rtol={self.rtol:g}, atol={self.atol:g})"
