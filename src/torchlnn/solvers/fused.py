"""The fused semi-implicit step of the LTC paper (Hasani et al., AAAI 2021, equation 3)."""

from __future__ import annotations

from torch import Tensor

from ._base import Solver, Terms, TimeStep


class Fused(Solver):
    """Semi-implicit Euler: conductances at the current state, the membrane term implicit.

    With sub-step ``h = dt / ode_unfolds``, each sub-step solves the update implicitly in the
    ``v`` that multiplies the conductances and explicitly in the conductances themselves:

        v_next = (C_m * v + h * numerator(v)) / (C_m + h * (denominator(v) + epsilon))

    which is the paper's ``(C_m/h * v + numerator) / (C_m/h + denominator)`` multiplied through
    by ``h``. Written this way a zero elapsed time returns ``v`` unchanged instead of
    ``inf * 0``. Because ``C_m``, ``h`` and every conductance are non-negative, ``v_next`` is a
    weighted average of ``v``, ``v_leak`` and the reversal potentials, so the state stays within
    their range for any ``dt`` (with ``epsilon = 0``; a positive epsilon only pulls towards 0).
    First order in ``h``.

    Args:
        epsilon: added to the denominator, as ncps does; ``C_m > 0`` already keeps it positive.
    """

    name = "fused"
    order = 1

    def __init__(self, epsilon: float = 1e-8):
        self.epsilon = float(epsilon)

    def integrate(self, terms: Terms, cm: Tensor, v: Tensor, dt: TimeStep, unfolds: int) -> Tensor:
        h = dt / unfolds
        for _ in range(unfolds):
            numerator, denominator = terms(v)
            v = (cm * v + h * numerator) / (cm + h * (denominator + self.epsilon))
        return v

    def __repr__(self) -> str:
        return f"Fused(epsilon={self.epsilon:g})"
