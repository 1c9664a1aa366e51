"""Markdown tables from the results of ``benchmarks/run.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- benchmark results: start (written by benchmarks/run.py --update-docs) -->"
END = "<!-- benchmark results: end -->"

LABELS = {
    "cfc_64": "CfC, 64 units",
    "cfc_autoncp_64_8": "CfC, AutoNCP(64, 8)",
    "ltc_autoncp_64_8": "LTC, AutoNCP(64, 8), 6 unfolds",
    "control_step_ltc_ncp19": "19-neuron NCP, one LTC step, batch 1",
    "control_step_cfc_ncp19": "19-neuron NCP, one CfC step, batch 1",
}


def _index(records: list[dict[str, Any]], device: str, threads: int) -> dict[tuple[str, str], dict]:
    measured = ("forward_ms", "forward_backward_ms", "step_us", "graphs_compiled")
    return {
        (r["case"], r["implementation"]): r
        for r in records
        if r["device"] == device
        and r["threads"] == threads
        and any(r.get(field) is not None for field in measured)
    }


def skip_notes(records: list[dict[str, Any]], threads: int, group: str) -> list[str]:
    """Return one line per implementation left out of a group's cases, with the reason."""
    notes = []
    for record in records:
        if record["group"] == group and record["threads"] == threads and record.get("skipped"):
            notes.append(f"* {record['case']}, {record['implementation']}: {record['skipped']}.")
    return notes


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _loads(values: list[float] | None) -> str:
    return "–" if not values else ", ".join(f"{v:.2f}" for v in values)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}x"


def _get(index, case, implementation, field):
    record = index.get((case, implementation))
    return None if record is None else record.get(field)


def headline(index) -> list[str]:
    lines = [
        "| model | forward ms: torchlnn / ncps / LSTM | forward + backward ms: torchlnn / "
        "ncps / LSTM | speed-up over ncps: forward / forward + backward | kept for backward "
        "MB: torchlnn / ncps / LSTM | peak of a training step MB: torchlnn / ncps |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in ("cfc_64", "cfc_autoncp_64_8", "ltc_autoncp_64_8"):
        if (case, "torchlnn") not in index:
            continue
        cells = [LABELS[case]]
        for field in ("forward_ms", "forward_backward_ms"):
            values = [_get(index, case, impl, field) for impl in ("torchlnn", "ncps", "torch.nn")]
            cells.append(" / ".join(_number(v) for v in values))
        forward = _ratio(
            _get(index, case, "ncps", "forward_ms"), _get(index, case, "torchlnn", "forward_ms")
        )
        backward = _ratio(
            _get(index, case, "ncps", "forward_backward_ms"),
            _get(index, case, "torchlnn", "forward_backward_ms"),
        )
        cells.append(f"{_times(forward)} / {_times(backward)}")
        kept = [
            _get(index, case, impl, "kept_for_backward_mb")
            for impl in ("torchlnn", "ncps", "torch.nn")
        ]
        cells.append(" / ".join(_number(v) for v in kept))
        peak = [_get(index, case, impl, "peak_memory_mb") for impl in ("torchlnn", "ncps")]
        cells.append(" / ".join(_number(v) for v in peak))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| control step | torchlnn µs | ncps µs | torch.nn.LSTMCell µs | speed-up over ncps | "
        "torchlnn / LSTMCell | torchlnn C µs (ctypes) | C: speed-up over ncps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in ("control_step_ltc_ncp19", "control_step_cfc_ncp19"):
        ours = _get(index, case, "torchlnn", "step_us")
        if ours is None:
            continue
        theirs = _get(index, case, "ncps", "step_us")
        lstm = _get(index, case, "torch.nn", "step_us")
        compiled = _get(index, case, "torchlnn C", "step_us")
        lines.append(
            f"| {LABELS[case]} | {_number(ours)} | {_number(theirs)} | {_number(lstm)} | "
            f"{_times(_ratio(theirs, ours))} | {_times(_ratio(ours, lstm))} | "
            f"{_number(compiled)} | {_times(_ratio(theirs, compiled))} |"
        )
    return lines


def targets(index) -> list[str]:
    """Return the speed and memory targets, each with its measured ratio and whether it is met."""

    def speedup(case, field):
        return _ratio(_get(index, case, "ncps", field), _get(index, case, "torchlnn", field))

    rows = []

    def add(target, value, goal, shown=None):
        if value is None:
            return
        met = "met" if value >= goal else "not met"
        rows.append(f"| {target} | {shown or _times(value)} | {met} |")

    add(
        "CfC, 64 units: forward + backward at least 3x faster than ncps",
        speedup("cfc_64", "forward_backward_ms"),
        3.0,
    )
    add(
        "CfC, AutoNCP(64, 8): at least 4x faster than ncps (forward + backward)",
        speedup("cfc_autoncp_64_8", "forward_backward_ms"),
        4.0,
    )
    add(
        "LTC, AutoNCP(64, 8): forward + backward at least 10x faster than ncps",
        speedup("ltc_autoncp_64_8", "forward_backward_ms"),
        10.0,
    )
    add(
        "LTC, AutoNCP(64, 8): at least 10x less memory kept for backward",
        _ratio(
            _get(index, "ltc_autoncp_64_8", "ncps", "kept_for_backward_mb"),
            _get(index, "ltc_autoncp_64_8", "torchlnn", "kept_for_backward_mb"),
        ),
        10.0,
    )
    for case in ("control_step_ltc_ncp19", "control_step_cfc_ncp19"):
        add(f"{LABELS[case]}: at least 8x faster than ncps", speedup(case, "step_us"), 8.0)
        add(
            f"{LABELS[case]}, generated C called from Python: at least 8x faster than ncps",
            _ratio(
                _get(index, case, "ncps", "step_us"), _get(index, case, "torchlnn C", "step_us")
            ),
            8.0,
        )
    for family in ("ltc", "cfc"):
        dense = _get(index, f"wiring_{family}_fully_connected", "torchlnn", "forward_backward_ms")
        half = _get(index, f"wiring_{family}_random_0.5", "torchlnn", "forward_backward_ms")
        value = _ratio(dense, half)
        if value is not None:
            add(
                f"{family.upper()}: half the synapses costs less than the dense wiring "
                "(forward + backward, dense / half)",
                value,
                1.0,
            )
    for family in ("cfc", "ltc"):
        counts = _get(index, f"compile_{family}", "torchlnn", "graphs_compiled")
        if counts:
            constant = len(set(counts)) == 1
            rows.append(
                f"| {family.upper()} under torch.compile(dynamic=True): no recompilation per "
                f"sequence length | graphs after each length: {counts} | "
                f"{'met' if constant else 'not met'} |"
            )
    if not rows:
        return []
    return ["| target | measured | |", "| --- | --- | --- |", *rows]


def scaling(index, prefix: str, key: str, values: list) -> list[str]:
    lines = [
        f"| {key} | family | forward ms: torchlnn / ncps / LSTM | forward + backward ms: "
        "torchlnn / ncps / LSTM | speed-up over ncps: forward / forward + backward |",
        "| --- | --- | --- | --- | --- |",
    ]
    for family in ("cfc", "ltc"):
        for value in values:
            case = f"{prefix}_{family}_{value}"
            if (case, "torchlnn") not in index:
                continue
            forward = [_get(index, case, i, "forward_ms") for i in ("torchlnn", "ncps", "torch.nn")]
            train = [
                _get(index, case, i, "forward_backward_ms")
                for i in ("torchlnn", "ncps", "torch.nn")
            ]
            lines.append(
                f"| {value} | {family.upper()} | {' / '.join(_number(v) for v in forward)} | "
                f"{' / '.join(_number(v) for v in train)} | "
                f"{_times(_ratio(forward[1], forward[0]))} / {_times(_ratio(train[1], train[0]))} |"
            )
    return lines


def wirings(index, records, threads: int) -> list[str]:
    lines = [
        "| family | wiring | synapses | forward ms: torchlnn / ncps | forward + backward ms: "
        "torchlnn / ncps |",
        "| --- | --- | --- | --- | --- |",
    ]
    for record in records:
        if record["group"] != "sparse_vs_dense" or record["implementation"] != "torchlnn":
            continue
        if record["threads"] != threads or record["device"] != "cpu":
            continue
        case = record["case"]
        params = record["params"]
        forward = [_get(index, case, i, "forward_ms") for i in ("torchlnn", "ncps")]
        train = [_get(index, case, i, "forward_backward_ms") for i in ("torchlnn", "ncps")]
        lines.append(
            f"| {params['family'].upper()} | {params['wiring']} | {params['synapses']} | "
            f"{' / '.join(_number(v) for v in forward)} | {' / '.join(_number(v) for v in train)} |"
        )
    return lines


def inference(index) -> list[str]:
    lines = [
        "| model | forward ms: torchlnn / ncps / LSTM | peak memory MB: torchlnn / ncps / LSTM |",
        "| --- | --- | --- |",
    ]
    for family in ("cfc", "ltc"):
        case = f"inference_last_{family}"
        if (case, "torchlnn") not in index:
            continue
        forward = [_get(index, case, i, "forward_ms") for i in ("torchlnn", "ncps", "torch.nn")]
        peak = [_get(index, case, i, "peak_memory_mb") for i in ("torchlnn", "ncps", "torch.nn")]
        steps = index[(case, "torchlnn")]["params"]["steps"]
        forward_text = " / ".join(_number(v) for v in forward)
        peak_text = " / ".join(_number(v, 2) for v in peak)
        lines.append(
            f"| {family.upper()}, {steps} steps, last output only | {forward_text} | {peak_text} |"
        )
    return lines


def compile_table(index) -> list[str]:
    lines = ["| model | torchlnn | ncps | torch.nn.LSTM |", "| --- | --- | --- | --- |"]
    for family in ("cfc", "ltc"):
        case = f"compile_{family}"
        if (case, "torchlnn") not in index:
            continue
        counts = [_get(index, case, i, "graphs_compiled") for i in ("torchlnn", "ncps", "torch.nn")]
        lengths = index[(case, "torchlnn")]["params"]["lengths"]
        lines.append(
            f"| {family.upper()} (lengths {lengths}) | "
            + " | ".join("–" if c is None else str(c) for c in counts)
            + " |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    machine, records = result["machine"], result["records"]
    load_start = machine.get("load_average_start")
    load_end = machine.get("load_average_end")
    steps = "20 steps (quick mode)" if result["settings"]["quick"] else "100 steps"
    lines = [
        f"Measured {machine['date']} with `{result['command']}` "
        f"(commit {machine['commit'] or 'unknown'}).",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {machine['cpu']}, {machine['logical_cpus']} logical CPUs |",
        f"| threads | {', '.join(map(str, machine['threads']))} (`torch.set_num_threads`) |",
        f"| load average (1, 5, 15 min) at start / end | {_loads(load_start)} / "
        f"{_loads(load_end)} |",
        f"| versions | Python {machine['python']}, torch {machine['torch']}, torchlnn "
        f"{machine['torchlnn']}, ncps {machine['ncps']} |",
        f"| platform | {machine['platform']} |",
        "",
        f"Batch 64, {steps}, 32 input features, float32, unless a table says otherwise. "
        "Medians of interleaved rounds after a warm-up.",
    ]
    for threads in sorted({r["threads"] for r in records}, reverse=True):
        index = _index(records, "cpu", threads)
        title = f"{threads} thread{'s' if threads > 1 else ''}"
        lines += [
            "",
            f"### {title}: headline table",
            "",
            *headline(index),
            "",
            f"### {title}: targets",
            "",
            *targets(index),
        ]
        sections = [
            (
                "scaling with units (fully connected)",
                scaling(index, "units", "units", [16, 32, 64, 128, 256]),
            ),
            (
                "scaling with sequence length (CfC 64 units, LTC AutoNCP(64, 8))",
                scaling(index, "length", "steps", [100, 300, 1000]),
            ),
            (
                "sparse against dense wirings (64 neurons, 8 motor)",
                wirings(index, records, threads),
            ),
            ("inference with return_sequences=False", inference(index)),
            (
                "graphs compiled by torch.compile(dynamic=True), after each sequence length",
                compile_table(index),
            ),
        ]
        groups = ["scaling_units", "scaling_length", "sparse_vs_dense", "inference", "compile"]
        for (heading, table), group in zip(sections, groups):
            if len(table) > 2:  # more than the header rows
                lines += ["", f"### {title}: {heading}", "", *table]
                notes = skip_notes(records, threads, group)
                if notes:
                    lines += ["", *notes]
    lines += ["", "### GPU", ""]
    gpu_threads = sorted({r["threads"] for r in records if r["device"] == "cuda"})
    if gpu_threads:
        lines += headline(_index(records, "cuda", gpu_threads[0]))
    else:
        lines.append(result["gpu"])
    return "\n".join(lines) + "\n"


def update_docs(path: Path, markdown_text: str) -> None:
    """Replace the text between the result markers of ``path`` with ``markdown_text``."""
    text = path.read_text()
    if START not in text or END not in text:
        raise ValueError(
            f"{path} has no results markers; add the lines {START!r} and {END!r} where the "
            f"results belong."
        )
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{START}\n\n{markdown_text}\n{END}{after}")
