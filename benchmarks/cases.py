"""The benchmark cases and how each one is measured.

Every case builds the same model three times, as far as each library allows: with torchlnn,
with ncps 1.0.1 and with the nearest ``torch.nn`` module (an LSTM of the same width). All
three run in the same process on the same input, so their ratios are comparable even on a
noisy machine.

Measurements:

* ``forward_ms``: one call under ``torch.no_grad()``.
* ``forward_backward_ms``: one call, then ``output.sum().backward()``.
* ``step_us``: one call of a cell on a single sample under ``torch.no_grad()``.
* ``kept_for_backward_mb``: the storages autograd keeps between forward and backward, seen
  through ``torch.autograd.graph.saved_tensors_hooks``; parameters are left out because
  they exist anyway.
* ``peak_memory_mb``: the peak memory of one training step (forward and backward) above
  what was in use before it. On Linux: the process's resident-memory high-water mark
  (``VmHWM``), reset through ``/proc/self/clear_refs`` just before the step, after glibc's
  ``malloc_trim`` returned freed memory to the system. Elsewhere: the running sum of the
  allocations that ``torch.profiler`` records per operation (much slower for models of many
  small operations). On a GPU: ``torch.cuda.max_memory_allocated``.

Each timing is the median of several rounds after a warm-up. In every round the
implementations run one after the other, in a rotating order, so that load from other
processes spreads over all of them.
"""

from __future__ import annotations

import ctypes
import shutil
import statistics
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import torchlnn
from torchlnn import wirings as lnn_wirings
from torchlnn.export import CStep, compile_c, to_c

try:  # ncps is a dev dependency; without it the ncps rows are reported as skipped.
    import ncps.torch as ncps_torch
    from ncps import wirings as ncps_wirings
    from ncps.torch.wired_cfc_cell import WiredCfCCell as NcpsWiredCfCCell
except ImportError:  # pragma: no cover - exercised only without the dev extra
    ncps_torch = ncps_wirings = NcpsWiredCfCCell = None

FEATURES = 32
BATCH = 64
STEPS = 100

TORCHLNN, NCPS, TORCH_NN = "torchlnn", "ncps", "torch.nn"
IMPLEMENTATIONS = (TORCHLNN, NCPS, TORCH_NN)
# The control-step cases also time torchlnn's generated C, compiled and called through ctypes.
TORCHLNN_C = "torchlnn C"
C_COMPILER = shutil.which("cc") or shutil.which("gcc")


@dataclass
class Case:
    """One benchmark case: a named model per implementation and how to measure it.

    Attributes:
        name: the case name in the results.
        group: the section of the report it belongs to.
        kind: "sequence" (forward, forward + backward, memory), "inference" (forward only,
            peak memory), "step" (single-sample cell calls) or "compile".
        builders: implementation -> a function returning the model (or None if that library
            has no equivalent).
        batch, steps: input shape (B, T, 32).
        params: settings reported with the results (units, wiring, synapses...).
        no_training: implementation -> why its training step is not measured (its forward
            still is).
    """

    name: str
    group: str
    kind: str
    builders: dict[str, Callable[[], nn.Module] | None]
    batch: int = BATCH
    steps: int = STEPS
    params: dict[str, Any] = field(default_factory=dict)
    no_training: dict[str, str] = field(default_factory=dict)


# ncps's LTC keeps about 2 GB for the backward of 64 fully connected neurons, batch 64 and 100
# steps (measured with this suite), growing as N^2 B T. Larger training steps are left out so
# that a run fits in a machine of 24 GB with other work on it: a training step peaks at about
# three times what it keeps (an 8 GB case ran out of memory there).
NCPS_LTC_KEPT_MB = 1981.0
NCPS_LTC_LIMIT_MB = 4000.0


def _ncps_ltc_limit(units: int, steps: int, batch: int = BATCH) -> dict[str, str]:
    """Return ``no_training`` for an ncps LTC case that would keep too much memory."""
    estimate = NCPS_LTC_KEPT_MB * (units / 64) ** 2 * (steps / 100) * (batch / 64)
    if estimate <= NCPS_LTC_LIMIT_MB:
        return {}
    return {
        NCPS: f"its training step would keep about {estimate / 1000:.0f} GB for the backward "
        f"(estimated from {NCPS_LTC_KEPT_MB:.0f} MB at 64 neurons and 100 steps), more than "
        f"the {NCPS_LTC_LIMIT_MB / 1000:.0f} GB this suite allows"
    }


# ---------------------------------------------------------------------- model builders


def _lnn_ncp19() -> lnn_wirings.NCP:
    return lnn_wirings.NCP(12, 6, 1, 6, 4, 6, 6, seed=22222)


def _ncps_ncp19():
    return ncps_wirings.NCP(12, 6, 1, 6, 4, 6, 6, seed=22222)


def _lnn_wiring(kind: str, units: int):
    if kind == "fully_connected":
        return lnn_wirings.FullyConnected(units, output_dim=8)
    if kind.startswith("random"):
        return lnn_wirings.Random(units, output_dim=8, sparsity_level=float(kind[7:]), seed=1)
    return lnn_wirings.AutoNCP(units, 8, seed=1)


def _ncps_wiring(kind: str, units: int):
    if kind == "fully_connected":
        return ncps_wirings.FullyConnected(units, output_dim=8)
    if kind.startswith("random"):
        return ncps_wirings.Random(units, output_dim=8, sparsity_level=float(kind[7:]))
    return ncps_wirings.AutoNCP(units, 8)


def _synapses(kind: str, units: int) -> int:
    wiring = _lnn_wiring(kind, units)
    wiring.build(FEATURES)
    return int(wiring.synapse_count)


def _ncps(build: Callable[[], nn.Module]) -> Callable[[], nn.Module] | None:
    return build if ncps_torch is not None else None


def sequence_builders(family: str, units: int | str, wiring_kind: str | None = None):
    """Return the three builders of a sequence model; ``units`` an int or "ncp"."""
    if wiring_kind is not None:
        lnn_units = lambda: _lnn_wiring(wiring_kind, units)  # noqa: E731
        ncps_units = lambda: _ncps_wiring(wiring_kind, units)  # noqa: E731
        width = units
    else:
        lnn_units = ncps_units = lambda: units  # noqa: E731
        width = units
    if family == "cfc":
        lnn = lambda: torchlnn.CfC(FEATURES, lnn_units())  # noqa: E731
        theirs = _ncps(lambda: ncps_torch.CfC(FEATURES, ncps_units()))
    else:
        lnn = lambda: torchlnn.LTC(FEATURES, lnn_units(), ode_unfolds=6)  # noqa: E731
        theirs = _ncps(lambda: ncps_torch.LTC(FEATURES, ncps_units(), ode_unfolds=6))
    return {
        TORCHLNN: lnn,
        NCPS: theirs,
        TORCH_NN: lambda: nn.LSTM(FEATURES, width, batch_first=True),
    }


def last_output_builders(family: str, units: int, wiring_kind: str | None = None):
    """Like ``sequence_builders`` with ``return_sequences=False``; the LSTM keeps its
    sequence output, as ``torch.nn.LSTM`` has no option to drop it."""
    builders = sequence_builders(family, units, wiring_kind)
    original_lnn, original_ncps = builders[TORCHLNN], builders[NCPS]

    def lnn():
        model = original_lnn()
        model.return_sequences = False
        return model

    def theirs():
        model = original_ncps()
        model.return_sequences = False
        return model

    builders[TORCHLNN] = lnn
    builders[NCPS] = theirs if original_ncps is not None else None
    return builders


def step_builders(family: str) -> dict[str, Callable[[], Any] | None]:
    """Return builders of the 19-neuron lane-keeping NCP on 32 inputs as a cell, of
    ``torch.nn.LSTMCell``, and of the torchlnn cell as generated C (``to_c``, then
    ``compile_c``), which is None without a C compiler."""
    if family == "ltc":
        lnn = lambda: torchlnn.LTCCell(_lnn_ncp19(), in_features=FEATURES)  # noqa: E731
        theirs = _ncps(lambda: ncps_torch.LTCCell(_ncps_ncp19(), FEATURES))
    else:
        lnn = lambda: torchlnn.WiredCfCCell(FEATURES, _lnn_ncp19())  # noqa: E731

        def theirs_cfc():
            wiring = _ncps_ncp19()
            wiring.build(FEATURES)
            return NcpsWiredCfCCell(FEATURES, wiring)

        theirs = _ncps(theirs_cfc)

    def compiled() -> CStep:
        # The same cell (same seed, so the same weights), written as C and compiled. The
        # folder with the sources and the library is removed when the step is released.
        folder = tempfile.mkdtemp(prefix="torchlnn-bench-")
        step = compile_c(to_c(lnn(), folder, f"bench_{family}"))
        weakref.finalize(step, shutil.rmtree, folder, ignore_errors=True)
        return step

    return {
        TORCHLNN: lnn,
        NCPS: theirs,
        TORCH_NN: lambda: nn.LSTMCell(FEATURES, 19),
        TORCHLNN_C: compiled if C_COMPILER else None,
    }


# ---------------------------------------------------------------------- the case list


def all_cases(quick: bool) -> list[Case]:
    """Return every case; ``quick`` keeps a small subset (about a minute in total)."""
    if quick:
        return _quick_cases()
    return _table_cases() + _other_cases()


def _table_cases() -> list[Case]:
    return [
        Case("cfc_64", "table", "sequence", sequence_builders("cfc", 64), params={"units": 64}),
        Case(
            "cfc_autoncp_64_8",
            "table",
            "sequence",
            sequence_builders("cfc", 64, "autoncp"),
            params={"wiring": "AutoNCP(64, 8)", "synapses": _synapses("autoncp", 64)},
        ),
        Case(
            "ltc_autoncp_64_8",
            "table",
            "sequence",
            sequence_builders("ltc", 64, "autoncp"),
            params={"wiring": "AutoNCP(64, 8)", "ode_unfolds": 6},
        ),
        Case("control_step_ltc_ncp19", "table", "step", step_builders("ltc"), batch=1, steps=1),
        Case("control_step_cfc_ncp19", "table", "step", step_builders("cfc"), batch=1, steps=1),
    ]


QUICK_STEPS = 20


def _quick_cases() -> list[Case]:
    """Return the headline cases on 20 steps instead of 100, and the CfC compile case."""
    table = _table_cases()
    for case in table:
        if case.kind == "sequence":
            case.steps = QUICK_STEPS
            case.params = {**case.params, "steps": QUICK_STEPS}
    compile_cases = [c for c in _other_cases(quick=True) if c.name == "compile_cfc"]
    return table + compile_cases


def _other_cases(quick: bool = False) -> list[Case]:
    cases = []
    # NOTE: ncps's LTC at 256 fully connected units takes minutes per training step on two
    # CPU threads (several (B, N, N) tensors per ODE unfold), so the LTC stops at 128.
    units_list = {
        "cfc": (16, 64) if quick else (16, 32, 64, 128, 256),
        "ltc": (16, 64) if quick else (16, 32, 64, 128),
    }
    for family in ("cfc", "ltc"):
        for units in units_list[family]:
            cases.append(
                Case(
                    f"units_{family}_{units}",
                    "scaling_units",
                    "sequence",
                    sequence_builders(family, units),
                    params={"units": units, "family": family},
                    no_training=_ncps_ltc_limit(units, STEPS) if family == "ltc" else {},
                )
            )
    lengths = (100, 300) if quick else (100, 300, 1000)
    for family, wiring in (("cfc", None), ("ltc", "autoncp")):
        for steps in lengths:
            cases.append(
                Case(
                    f"length_{family}_{steps}",
                    "scaling_length",
                    "sequence",
                    sequence_builders(family, 64, wiring),
                    steps=steps,
                    params={"steps": steps, "family": family, "units": 64},
                    no_training=_ncps_ltc_limit(64, steps) if family == "ltc" else {},
                )
            )
    kinds = ["fully_connected", "random_0.5", "autoncp"]
    if not quick:
        kinds[1:2] = ["random_0.25", "random_0.5", "random_0.75"]
    for family in ("ltc", "cfc"):
        for kind in kinds:
            cases.append(
                Case(
                    f"wiring_{family}_{kind}",
                    "sparse_vs_dense",
                    "sequence",
                    sequence_builders(family, 64, kind),
                    params={"family": family, "wiring": kind, "synapses": _synapses(kind, 64)},
                )
            )
    inference_steps = 300 if quick else 1000
    for family, wiring in (("cfc", None), ("ltc", "autoncp")):
        cases.append(
            Case(
                f"inference_last_{family}",
                "inference",
                "inference",
                last_output_builders(family, 64, wiring),
                steps=inference_steps,
                params={"steps": inference_steps, "return_sequences": False},
            )
        )
    lengths = (5, 9) if quick else (5, 9, 17, 33)
    for family in ("cfc", "ltc"):
        cases.append(
            Case(
                f"compile_{family}",
                "compile",
                "compile",
                sequence_builders(family, 16),
                batch=4,
                params={"lengths": list(lengths), "units": 16},
            )
        )
    return cases


# ---------------------------------------------------------------------- measurements


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _output(result: Any) -> torch.Tensor:
    return result[0] if isinstance(result, tuple) else result


def forward_call(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def call() -> None:
        with torch.no_grad():
            model(x)

    return call


def training_call(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def call() -> None:
        model.zero_grad(set_to_none=True)
        _output(model(x)).sum().backward()

    return call


def step_call(cell: nn.Module | CStep, x: torch.Tensor, repeats: int) -> Callable[[], None]:
    """Return a function that runs ``repeats`` single-sample steps of ``cell``."""
    if isinstance(cell, CStep):  # it keeps its own state and takes one sample (I,) per call
        sample = x[0]

        def call_c() -> None:
            for _ in range(repeats):
                cell(sample)

        return call_c

    width = cell.hidden_size if isinstance(cell, nn.LSTMCell) else cell.state_size
    h = torch.zeros(1, width, device=x.device)
    state: Any = (h, torch.zeros_like(h)) if isinstance(cell, nn.LSTMCell) else h
    # ncps's wired CfC cell takes the elapsed time as a required third argument.
    arguments = (x, state, 1.0) if type(cell) is NcpsWiredCfCCell else (x, state)

    def call() -> None:
        with torch.no_grad():
            for _ in range(repeats):
                cell(*arguments)

    return call


def time_rounds(
    calls: dict[str, Callable[[], None]],
    rounds: int,
    device: torch.device,
    budget_s: float,
) -> dict[str, float]:
    """Return the median seconds per call of each function, interleaved over rounds.

    One warm-up call each; a function whose warm-up takes long runs fewer rounds (at least
    one), so that a slow baseline does not exceed ``budget_s``.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    allowed: dict[str, int] = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        synchronize(device)
        first = time.perf_counter() - start
        allowed[name] = max(1, min(rounds, int(budget_s / max(first, 1e-9))))
    names = list(calls)
    for round_index in range(rounds):
        offset = round_index % len(names)
        for name in names[offset:] + names[:offset]:  # rotate the order every round
            if len(times[name]) >= allowed[name]:
                continue
            start = time.perf_counter()
            calls[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def kept_for_backward_mb(model: nn.Module, x: torch.Tensor) -> float:
    """Return the MB of storages autograd keeps for the backward of ``model(x)``."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = _output(model(x))
    del output
    return sum(storages.values()) / 2**20


def _resident_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"/proc/self/status has no {field} line")


def _peak_resident_mb(call: Callable[[], None]) -> float | None:
    """Return the resident-memory peak of ``call`` above the level before it, or None where
    the high-water mark cannot be reset (not Linux, or no permission)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = _resident_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except (OSError, ValueError):
        return None
    call()
    return max(0, _resident_kb("VmHWM") - before) / 1024


def peak_memory_mb(call: Callable[[], None], device: torch.device) -> float:
    """Return the peak MB of memory that ``call`` adds to what was in use before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        call()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20
    resident = _peak_resident_mb(call)
    if resident is not None:
        return resident
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    total = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        if event.name == "[memory]":  # frees outside any operation
            total += event.cpu_memory_usage
        else:
            total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak / 2**20


def graphs_compiled(model: nn.Module, lengths: list[int], batch: int) -> list[int]:
    """Return the number of graphs ``torch.compile(dynamic=True)`` has built after each
    sequence length (backend "eager": Dynamo's capture only, no code generation)."""
    import torch._dynamo

    graphs: list[Any] = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counting_backend, dynamic=True)
    counts = []
    for steps in lengths:
        with torch.no_grad():
            compiled(torch.randn(batch, steps, FEATURES))
        counts.append(len(graphs))
    torch._dynamo.reset()
    return counts
