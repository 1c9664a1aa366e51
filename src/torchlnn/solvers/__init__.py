"""Solvers: how an LTC cell advances its membrane equation over one input step.

Each solver is a small object with a ``name`` and an ``order``. ``LTCCell(solver=...)`` takes
a name or an instance:

* ``"fused"`` (default): the LTC paper's semi-implicit step, stable for any elapsed time.
* ``"euler"`` and ``"rk4"``: explicit methods of order 1 and 4, which warn when a sub-step is
  too long for stability and raise instead of returning NaN.
* ``"adaptive"``: Dormand-Prince 5(4) with error control, the reference for tests and analysis.
"""

from __future__ import annotations

from ._base import ExplicitSolver, Solver, vector_field
from .adaptive import Adaptive
from .explicit import RK4, Euler
from .fused import Fused

__all__ = [
    "Solver",
    "ExplicitSolver",
    "Fused",
    "Euler",
    "RK4",
    "Adaptive",
    "get_solver",
    "vector_field",
]

SOLVERS = {"fused": Fused, "euler": Euler, "rk4": RK4, "adaptive": Adaptive}


def get_solver(solver: str | Solver, epsilon: float = 1e-8) -> Solver:
    """Return the solver named ``solver`` (or ``solver`` itself when it is a Solver)."""
    if isinstance(solver, Solver):
        return solver
    if solver not in SOLVERS:
        raise ValueError(
            f"Unknown LTC solver {solver!r}; expected one of {sorted(SOLVERS)} or a "
            f"torchlnn.solvers.Solver instance."
        )
    if solver == "fused":
        return Fused(epsilon=epsilon)
    return SOLVERS[solver]()
