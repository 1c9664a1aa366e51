"""The lane-keeping report: one table per question, the figures, and a plain answer.

``write_report(folder, record)`` turns a run's record (``lane_keeping.json``) into
``report.md`` and ``report.html`` side by side. Both come from one list of blocks (headings,
paragraphs, tables, images), so they always say the same thing.
"""

from __future__ import annotations

import html
import math
import os
import platform
from pathlib import Path
from typing import Any

# Neurons of the conv head: the output values of each conv layer plus the 32 dense units,
# computed for a frame size in ``perception_neurons``.
CONV_STACK = ((24, 5, 2), (36, 5, 2), (48, 3, 2), (64, 3, 1), (8, 3, 1))

MODEL_NAMES = {
    "ncp-ltc": "NCP, LTC (19 neurons)",
    "ncp-cfc": "NCP, CfC (19 neurons)",
    "cfc": "dense CfC (19 neurons)",
    "lstm": "LSTM (64 units)",
    "ctrnn": "CT-RNN (19 neurons)",
    "cnn": "CNN (no memory)",
    "expert": "expert (privileged)",
}

RECURRENT_NEURONS = {"ncp-ltc": 19, "ncp-cfc": 19, "cfc": 19, "lstm": 64, "ctrnn": 19, "cnn": 0}


def perception_neurons(frame_size: tuple[int, int]) -> int:
    """Return the number of neurons (output values) of the conv head for one frame."""
    height, width = frame_size
    total = 0
    for channels, kernel, stride in CONV_STACK:
        height = (height - kernel) // stride + 1
        width = (width - kernel) // stride + 1
        total += channels * height * width
    return total + 32


class Document:
    """Blocks of a report, rendered to Markdown and to HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", (path, caption)))

    def markdown(self) -> str:
        lines: list[str] = []
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                lines += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                lines += [value, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                header, rows = value
                lines.append("| " + " | ".join(header) + " |")
                lines.append("| " + " | ".join("---" for _ in header) + " |")
                lines += ["| " + " | ".join(row) + " |" for row in rows]
                lines.append("")
            else:
                path, caption = value
                lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        return "\n".join(lines)

    def html(self, title: str) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.3em .6em;"
            "text-align:right}td:first-child,th:first-child{text-align:left}"
            "img{max-width:100%}figcaption{font-style:italic;margin-bottom:1.5em}</style>",
            "</head><body>",
        ]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
            elif kind == "paragraph":
                parts.append(f"<p>{html.escape(value)}</p>")
            elif kind == "bullets":
                items = "".join(f"<li>{html.escape(item)}</li>" for item in value)
                parts.append(f"<ul>{items}</ul>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                    for row in rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:
                path, caption = value
                parts.append(
                    f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts)


def _number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _evaluation(record: dict[str, Any], name: str, condition: str) -> dict[str, Any] | None:
    entry = record["stages"].get("evaluate", {}).get(f"{name} | {condition}")
    return None if entry is None else entry["summary"]


def _answer(record: dict[str, Any], models: list[str], conditions: list[str]) -> list[str]:
    """Return sentences that answer, from the numbers, whether the NCP does more with less."""
    analysis = record["stages"].get("analyse", {}).get("models", {})
    frame_size = tuple(record["stages"]["collect"]["frame_size"])
    sentences = []
    if "ncp-ltc" in analysis:
        ncp = analysis["ncp-ltc"]
        sentences.append(
            f"The NCP driver has {RECURRENT_NEURONS['ncp-ltc']} liquid neurons with "
            f"{ncp.get('synapses', 0)} synapses between them and "
            f"{ncp.get('sensory_synapses', 0)} from its 32 sensory inputs. Counting perception, "
            f"the whole driver has {perception_neurons(frame_size):,} conv-head neurons plus "
            f"those 19, and {ncp['effective_parameters']:,} trainable parameters: "
            f"{ncp['perception_parameters']:,} in the conv head and "
            f"{ncp['control_parameters']:,} in the liquid controller."
        )
    others = [kind for kind in ("lstm", "cnn", "cfc", "ctrnn", "ncp-cfc") if kind in analysis]
    for kind in others:
        entry = analysis[kind]
        sentences.append(
            f"The {MODEL_NAMES[kind]} driver on the same conv head at the same camera resolution "
            f"({frame_size[0]} x {frame_size[1]}) has {entry['effective_parameters']:,} "
            f"trainable parameters, {entry['control_parameters']:,} of them in control."
        )

    if "ncp-ltc" in models:
        for condition in (conditions[0], conditions[-1]):
            rates = {
                kind: _evaluation(record, kind, condition)["departures_per_km"]
                for kind in models
                if _evaluation(record, kind, condition) is not None
            }
            if len(rates) < 2:
                continue
            best = min(rates.values())
            ordered = sorted(rates.items(), key=lambda item: item[1])
            ranked = ", ".join(f"{MODEL_NAMES[kind]} {rate:.1f}" for kind, rate in ordered)
            tied = [kind for kind, rate in rates.items() if rate == best]
            if rates["ncp-ltc"] > best:
                verdict = "the NCP did not have the fewest departures"
            elif len(tied) > 1:
                others = len(tied) - 1
                verdict = f"the NCP tied with {others} other model(s) for the fewest departures"
            else:
                verdict = "the NCP had the fewest departures"
            sentences.append(
                f"With {condition} frames {verdict} (departures per km: {ranked})."
            )
        ncp_clean = _evaluation(record, "ncp-ltc", conditions[0])
        if ncp_clean is not None and ncp_clean["distance_m"] > 0:
            kilometres = ncp_clean["distance_m"] / 1000
            sentences.append(
                f"Each model drove {kilometres:.1f} km per condition, so one departure more or "
                f"less moves its rate by {1 / kilometres:.1f} per km. Runs with other seeds, or "
                "only another thread count, can differ by that much, so one run does not rank "
                "the models: compare several --seed values."
            )
    return sentences


def _live_last_layer(model_analysis: dict) -> str:
    """Format the live channels of the last conv layer: "3 of 8", or a share in older runs."""
    live = model_analysis.get("live_channels")
    if not live:
        return "n/a"
    channels = model_analysis.get("conv_channels")
    if not channels:  # records written before the channel counts were stored
        return f"{100 * live[-1]:.0f}%"
    return f"{round(live[-1] * channels[-1])} of {channels[-1]}"


def _blind_policies(analysis: dict[str, Any]) -> list[str]:
    """Return a warning for each policy whose conv head has no live channel in its last layer."""
    sentences = []
    for kind, summary in analysis.get("models", {}).items():
        live = summary.get("live_channels")
        if live and live[-1] == 0:
            sentences.append(
                f"Warning: in the {MODEL_NAMES.get(kind, kind)} policy, the last conv layer has "
                "no live channel on the test frames, so the policy's output does not depend on "
                "the camera. Its ReLUs died during training, and its row measures a fixed "
                "steering output, not its controller. Train it again with another seed or a "
                "lower head learning rate."
            )
    return sentences


def _rates(trained: dict[str, Any]) -> str:
    return ", ".join(f"{entry.get('lr')} ({kind})" for kind, entry in trained.items())


def _conditions(record: dict[str, Any]) -> str:
    """Return the sentence on threads and load behind the wall times, or "" for older runs."""
    conditions = record.get("conditions")
    if not conditions:
        return ""
    threads = sorted({c["torch_threads"] for c in conditions.values()})
    cpus = next(iter(conditions.values()))["cpus"]
    loads = ", ".join(
        f"{stage} {c['load_average']:g}"
        for stage, c in conditions.items()
        if c.get("load_average") is not None
    )
    text = f" Torch threads: {', '.join(str(t) for t in threads)}."
    if loads:
        text += (
            f" One-minute load average when each stage ended, this run's own threads "
            f"included: {loads}, on {cpus} logical CPUs; a load well above this run's threads "
            "may mean that other programs shared the CPUs and made the stages slower."
        )
    return text


def write_report(folder: Path, record: dict[str, Any]) -> Path:
    """Write ``report.md`` and ``report.html`` into ``folder``; return the Markdown path."""
    config = record["config"]
    data = record["stages"]["collect"]
    trained = record["stages"].get("train", {})
    analysis = record["stages"].get("analyse", {})
    models = list(trained)
    conditions = ["clean"] + [f"noise {v:g}" for v in config["noise_variances"]]
    figures = "figures"

    document = Document()
    title = f"Lane keeping from camera pixels ({config['preset']} preset, {config['env']})"
    document.heading(title, 1)
    document.paragraph(
        "A car keeps its lane from a front camera. Every policy shares the NCP paper's conv "
        "head (five conv layers, 32 features per frame) and differs only in the controller "
        "that turns the feature sequence into a road curvature. All were trained on the same "
        "expert data with the same budget and seed, and drove the same roads."
    )

    document.heading("The answer")
    for sentence in _answer(record, models, conditions):
        document.paragraph(sentence)

    document.heading("Results")
    header = ["model", "recurrent neurons", "synapses", "parameters: perception",
              "parameters: control", "offline test RMSE (1/km)"]
    header += [f"departures/km, {c}" for c in conditions]
    header += ["attention SSIM", "PC1 variance", "live conv channels, last layer"]
    rows = []
    for kind in ["expert", *models]:
        model_analysis = analysis.get("models", {}).get(kind, {})
        train = trained.get(kind, {})
        mse = train.get("test_mse")
        synapses = model_analysis.get("synapses")
        row = [
            MODEL_NAMES.get(kind, kind),
            "n/a" if kind == "expert" else str(RECURRENT_NEURONS.get(kind, "n/a")),
            "n/a" if synapses is None else f"{synapses} + {model_analysis['sensory_synapses']}",
            _number(model_analysis.get("perception_parameters")),
            _number(model_analysis.get("control_parameters")),
            "n/a" if mse is None else f"{1000 * math.sqrt(mse):.2f}",
        ]
        for condition in conditions:
            summary = _evaluation(record, kind, condition)
            row.append("n/a" if summary is None else f"{summary['departures_per_km']:.1f}")
        row.append(_number(model_analysis.get("attention_ssim"), 3))
        pc1 = model_analysis.get("pc1_variance")
        row.append("n/a" if pc1 is None else f"{100 * pc1:.0f}%")
        row.append(_live_last_layer(model_analysis))
        rows.append(row)
    document.table(header, rows)
    for sentence in _blind_policies(analysis):
        document.paragraph(sentence)
    document.paragraph(
        "Synapses: between the liquid neurons + from the sensory inputs (NCP policies only). "
        "Parameters count trainable values that affect the output (entries that the wiring "
        "masks out are left out). Offline test RMSE: root-mean-square error of the curvature "
        "on held-out episodes, in 1/km. Departures: the car's body centre left the lane; it "
        "was then put back on the lane centre, as a safety driver would. Attention SSIM: mean "
        "structural similarity between VisualBackProp maps of clean test frames and of the "
        f"same frames with Gaussian noise of standard deviation {analysis.get('noise_std', 0):.3f}"
        " (1 = identical). PC1 variance: share of the recurrent neurons' activity variance on "
        "the first principal component while watching a test episode. Live conv channels: "
        "the conv head's last-layer channels that are positive somewhere on the attention "
        "frames (a channel that is zero everywhere passes no gradient and stays dead)."
    )

    document.heading("Closed-loop driving, clean frames")
    rows = []
    for kind in ["expert", *models]:
        summary = _evaluation(record, kind, "clean")
        if summary is None:
            continue
        rows.append([
            MODEL_NAMES.get(kind, kind),
            f"{summary['distance_m'] / 1000:.2f}",
            str(summary["departures"]),
            f"{summary['mean_abs_offset_m']:.3f}",
            f"{100 * summary['in_lane_fraction']:.1f}%",
            f"{1000 * summary['steering_rate_rms']:.2f}",
        ])
    document.table(
        ["model", "km driven", "departures", "mean absolute offset (m)", "time in lane",
         "steering rate RMS (1/km per s)"],
        rows,
    )

    document.heading("Figures")
    evaluated = record["stages"].get("evaluate", {})
    for kind in ["expert", *models]:
        for entry in evaluated.values():  # clean first, then the noise plotted (if any)
            if entry["policy"] != kind or not entry.get("plot"):
                continue
            relative = os.path.relpath(entry["plot"], folder)
            caption = f"Driven path of the {MODEL_NAMES.get(kind, kind)} ({entry['condition']})"
            document.image(relative, caption)
    for kind, entry in analysis.get("models", {}).items():
        for key, caption in (
            ("attention_figure", "VisualBackProp attention, clean and noisy frames"),
            ("traces_figure", "neuron activity against the expert's curvature"),
            ("wiring_figure", "the trained wiring (line width: learned weight)"),
            ("attention_animation", "attention while driving (animation)"),
        ):
            if key in entry:
                document.image(f"{figures}/{entry[key]}", f"{MODEL_NAMES[kind]}: {caption}")
    if "pca_figure" in analysis:
        document.image(f"{figures}/{analysis['pca_figure']}",
                       "Variance explained by the first principal components of neuron activity")

    document.heading("How this was measured")
    split = data["split"]
    timings = record.get("timings", {})
    document.bullets([
        f"Data: {config['episodes']} expert episodes of up to {config['episode_steps']} frames "
        f"({data['frames']:,} frames of {data['frame_size'][0]} x {data['frame_size'][1]}); "
        f"{len(split['train'])} episodes for training, {len(split['valid'])} for validation, "
        f"{len(split['test'])} for the offline test; {100 * config['recovery_fraction']:.0f}% "
        f"start off the lane centre; steering noise {config['steer_noise']} 1/m.",
        f"Training: windows of {config['window']} frames every {config['stride']} frames, "
        f"batch {config['batch_size']}, Adam with learning rate {config['head_lr']} for the "
        f"conv head and {_rates(trained)} for the controller, gradient "
        f"clipping at {config['grad_clip']}, at most {config['epochs']} epochs with early "
        f"stopping after {config['patience']} epochs without improvement, loss weighted by "
        f"exp({config['alpha']} m x |curvature|), shadow and lighting augmentation.",
        f"Evaluation: {config['eval_distance']:g} m on each of the road seeds "
        f"{', '.join(str(s) for s in config['eval_seeds'])}, with clean frames and with "
        f"Gaussian pixel noise of variance {', '.join(f'{v:g}' for v in config['noise_variances'])}"
        " on images in [0, 1], not clipped.",
        f"Seed {config['seed']}; torchlnn {record.get('torchlnn_version')}, torch "
        f"{record.get('torch_version')}; {platform.machine()} with {os.cpu_count()} CPU cores.",
        "Wall time per stage: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
        + f"; total {sum(timings.values()) / 60:.1f} min." + _conditions(record),
    ])

    markdown_path = folder / "report.md"
    markdown_path.write_text(document.markdown(), encoding="utf-8")
    (folder / "report.html").write_text(document.html(title), encoding="utf-8")
    return markdown_path
