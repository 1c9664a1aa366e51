"""Run a whole result table: several models of one experiment, each over several seeds.

    python experiments/run_table.py halfcheetah --models ltc,lstm,gru --seeds 3
    python experiments/run_table.py xor --models cfc,cfc-mixed,ltc --seeds 1 --epochs 5 \\
        --note "5 of 200 epochs: compute budget"
    python experiments/run_table.py --docs      # rebuild docs/results/experiments.md

Seeds are run one at a time and the table is rewritten after each, so an interrupted table
keeps its finished seeds. Rerunning the same command resumes the unfinished run from its last
checkpoint and skips finished ones. Config fields can be overridden as in
``torchlnn experiment`` (for example ``--epochs 20``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from torchlnn.experiments import EXPERIMENTS, ExperimentConfig, render_table, run_experiment
from torchlnn.experiments.runner import spec_fields, training_commits
from torchlnn.training.config import add_config_arguments
from torchlnn.training.models import MODEL_NAMES

DOCS_PAGE = Path("docs/results/experiments.md")
DOCS_INTRO = """# Experiment results

Our numbers beside the papers' for the experiments of the LTC paper (Hasani et al., AAAI
2021) and the CfC paper (Hasani et al., Nature Machine Intelligence 2022). Each table is
generated from `experiments/results/<name>.json` by `python experiments/run_table.py --docs`;
the commands, seeds, hardware and torchlnn commit of every row are listed under it. Rows
marked "(reduced)" did not run the paper's full protocol (fewer epochs or samples) and are
not comparable with the paper's number; the note says why.
"""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", choices=sorted(EXPERIMENTS), help="experiment")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated models")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. SEEDS-1 (default: 3)")
    parser.add_argument("--results-dir", default="experiments/results")
    parser.add_argument("--note", default=None, help="remark shown in every row of this run")
    parser.add_argument(
        "--docs",
        action="store_true",
        help=f"rewrite the Markdown tables and {DOCS_PAGE} from the result files",
    )
    add_config_arguments(parser, ExperimentConfig, skip=("task", "experiment", "model", "seed"))
    return parser.parse_args(argv)


def build_docs(results_dir: Path, extra_sections: list[Path] = ()) -> None:
    """Write the docs page from the result files, extra Markdown sections and their images."""
    sections = [DOCS_INTRO]
    for name in EXPERIMENTS:
        path = results_dir / f"{name}.json"
        if path.exists():
            record = {**json.loads(path.read_text()), **spec_fields(EXPERIMENTS[name])}
            for row in record.get("models", {}).values():
                commits = training_commits(row.get("run_dirs", []))
                if commits:
                    row["training_commits"] = commits
            path.write_text(json.dumps(record, indent=2) + "\n")
            table = render_table(record)
            (results_dir / f"{name}.md").write_text(table)
            sections.append(table)
    for path in extra_sections:
        if path.exists():
            sections.append(path.read_text())
    DOCS_PAGE.parent.mkdir(parents=True, exist_ok=True)
    for image in results_dir.glob("*.png"):
        shutil.copyfile(image, DOCS_PAGE.parent / image.name)
    DOCS_PAGE.write_text("\n".join(sections))
    print(f"wrote {DOCS_PAGE}")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    results_dir = Path(args.results_dir)
    if args.docs:
        build_docs(results_dir, sorted(results_dir.glob("*.section.md")))
        return 0
    if args.name is None:
        raise SystemExit("run_table.py: name an experiment, or pass --docs.")

    models = [model.strip() for model in args.models.split(",") if model.strip()]
    unknown = [model for model in models if model not in MODEL_NAMES]
    if unknown:
        raise SystemExit(f"run_table.py: unknown models {unknown}; expected {MODEL_NAMES}.")
    overrides = {
        key[len("cfg_") :]: value for key, value in vars(args).items() if key.startswith("cfg_")
    }
    option_text = "".join(
        f" --{key.replace('_', '-')} {shlex.quote(str(value))}" for key, value in overrides.items()
    )
    if args.note:
        option_text += f" --note {shlex.quote(args.note)}"
    for model in models:
        for count in range(1, args.seeds + 1):
            command = f"torchlnn experiment {args.name} --model {model} --seeds {count}"
            command += option_text
            row = run_experiment(
                args.name,
                model,
                list(range(count)),
                overrides=overrides,
                results_dir=results_dir,
                note=args.note,
                command=command,
            )
            print(
                f"{args.name} {model} seeds 0..{count - 1}: {row['mean']:.4f} ± "
                f"{row['std']:.4f}, {row['seconds_per_epoch']:.2f} s per epoch",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
