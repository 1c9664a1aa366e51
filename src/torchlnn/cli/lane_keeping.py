"""``torchlnn lane-keeping``: the lane-keeping system end to end (see driving.lane_keeping)."""

from __future__ import annotations

import argparse
import sys


def _models(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _numbers(kind):
    def parse(text: str) -> tuple:
        return tuple(kind(part) for part in text.split(",") if part.strip())

    return parse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lane-keeping",
        help="train a car to keep its lane from camera pixels with 19 liquid neurons",
        description=(
            "Collect expert driving data, train the NCP policy and baselines, drive them in "
            "closed loop with and without pixel noise, inspect them, and write "
            "runs/lane-keeping/<timestamp>/report.md and report.html. Running the same command "
            "again resumes an interrupted run."
        ),
    )
    parser.add_argument("--preset", choices=("quick", "full"), default="quick",
                        help="quick: 10 to 20 minutes on 2 CPU cores (default); full: the "
                             "paper-scale version, hours")
    parser.add_argument("--env", choices=("sim", "carracing"), default=None,
                        help="environment: the front-camera simulator (default) or CarRacing")
    parser.add_argument("--models", type=_models, default=None,
                        help="comma-separated policy kinds (ncp-ltc, ncp-cfc, cfc, lstm, ctrnn, "
                             "cnn); default from the preset")
    parser.add_argument("--seed", type=int, default=None, help="seed of the whole run")
    parser.add_argument("--episodes", type=int, default=None, help="expert episodes to collect")
    parser.add_argument("--episode-steps", type=int, default=None, help="frames per episode")
    parser.add_argument("--epochs", type=int, default=None, help="maximum training epochs")
    parser.add_argument("--conv-init", choices=("glorot", "pytorch"), default=None,
                        help="initialisation of the conv head: glorot (zero biases, default) or "
                             "pytorch (PyTorch's defaults, as in runs recorded before this "
                             "option)")
    parser.add_argument("--head-lr", type=float, default=None,
                        help="Adam learning rate of the conv head (0.001)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate of the controllers; default: each kind's own")
    parser.add_argument("--patience", type=int, default=None,
                        help="epochs without a better validation loss before training stops "
                             "(quick: 3, full: 5)")
    parser.add_argument("--eval-seeds", type=_numbers(int), default=None,
                        help="comma-separated road seeds of the closed-loop evaluation")
    parser.add_argument("--eval-distance", type=float, default=None,
                        help="metres driven per evaluation seed")
    parser.add_argument("--noise-variances", type=_numbers(float), default=None,
                        help="comma-separated pixel-noise variances on images in [0, 1]")
    parser.add_argument("--devices", default=None,
                        help="Lightning devices per node; more than one trains with DDP")
    parser.add_argument("--num-nodes", type=int, default=None, help="nodes for multi-node DDP")
    parser.add_argument("--runs-root", default=None, help="folder of the run folders (runs)")
    parser.add_argument("--run-dir", default=None, help="work in this run folder")
    parser.add_argument("--resume", choices=("auto", "never"), default="auto",
                        help="auto: continue the latest unfinished run with the same settings")
    parser.add_argument("--redo", choices=("evaluate", "analyse"), default=None,
                        help="repeat this stage and the ones after it (with --run-dir: in that "
                             "run)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from torchlnn.driving.lane_keeping import check_run_dir, preset_config, run_lane_keeping

    fields = ("env", "models", "seed", "episodes", "episode_steps", "epochs", "conv_init",
              "head_lr", "lr", "patience", "eval_seeds", "eval_distance", "noise_variances",
              "devices", "num_nodes", "runs_root", "threads")
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if args.no_progress:
        overrides["progress"] = False

    # Settings and run folder are checked before any work, and a mistake there is reported
    # as a message rather than a traceback.
    try:
        config = preset_config(args.preset, **overrides)
        check_run_dir(config, args.run_dir, args.redo)
    except ValueError as error:
        print(f"torchlnn lane-keeping: error: {error}", file=sys.stderr)
        return 2

    run_lane_keeping(config, resume=args.resume, run_dir=args.run_dir, redo=args.redo)
    return 0
