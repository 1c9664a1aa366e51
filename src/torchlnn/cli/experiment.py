"""``torchlnn experiment``: train one model of a paper's experiment over several seeds."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``experiment`` sub-command."""
    from torchlnn.experiments.specs import EXPERIMENTS, ExperimentConfig
    from torchlnn.training.config import add_config_arguments
    from torchlnn.training.models import MODEL_NAMES

    parser = subparsers.add_parser(
        "experiment",
        help="reproduce a paper's experiment for one model over several seeds",
        description=(
            "Train MODEL on experiment NAME once per seed with the paper's protocol, then "
            "write <results-dir>/NAME.json and NAME.md. Rerunning the same command resumes "
            "unfinished runs from their last checkpoint and reuses finished ones. Any config "
            "field can be overridden, e.g. --epochs 20 --batch-size 64."
        ),
    )
    parser.add_argument("name", choices=sorted(EXPERIMENTS), help="experiment to run")
    parser.add_argument("--model", required=True, choices=MODEL_NAMES, help="model to train")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default: 3)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds are FIRST_SEED .. FIRST_SEED+SEEDS-1"
    )
    parser.add_argument(
        "--results-dir",
        default="experiments/results",
        help="folder of the result JSON and Markdown files (default: experiments/results)",
    )
    parser.add_argument("--note", default=None, help="remark shown in the model's table row")
    add_config_arguments(parser, ExperimentConfig, skip=("task", "experiment", "model", "seed"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the experiment and print the model's row."""
    from torchlnn.experiments.runner import experiment_config, get_spec, run_experiment
    from torchlnn.experiments.specs import ExperimentConfig

    if args.seeds < 1:
        raise SystemExit(f"torchlnn experiment: --seeds must be at least 1, got {args.seeds}.")
    overrides = {
        key[len("cfg_") :]: value
        for key, value in vars(args).items()
        if key.startswith("cfg_") and key[len("cfg_") :] in ExperimentConfig.__dataclass_fields__
    }
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    try:
        experiment_config(get_spec(args.name), args.model, seeds[0], overrides)
    except ValueError as error:
        print(f"torchlnn experiment: error: {error}", file=sys.stderr)
        return 2
    row = run_experiment(
        args.name,
        args.model,
        seeds,
        overrides=overrides,
        results_dir=args.results_dir,
        note=args.note,
    )
    print(
        f"{args.name} {args.model}: {row['mean']:.4f} ± {row['std']:.4f} over seeds "
        f"{row['seeds']}; {row['parameters']} parameters; "
        f"{row['seconds_per_epoch'] or float('nan'):.2f} s per epoch; "
        f"table: {args.results_dir}/{args.name}.md"
    )
    return 0
