"""``torchlnn driving``: collect driving data, evaluate policies in closed loop, render frames.

Sub-commands:

- ``collect``: expert episodes into compressed shards with a manifest; resumes when run again.
- ``evaluate``: drive a policy a fixed distance on fixed seeds, write JSON, CSV and a plot.
- ``render``: save frames that the expert sees as PNG files, to look at the environment.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``driving`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "driving",
        help="lane-keeping environments: collect data, evaluate policies, render frames",
        description="Lane-keeping environments: collect data, evaluate policies, render frames.",
    )
    commands = parser.add_subparsers(dest="driving_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    # collect -------------------------------------------------------------------------
    collect = commands.add_parser(
        "collect",
        help="collect expert driving episodes (resumable)",
        description="Drive episodes with the expert and write one compressed shard per "
        "episode plus manifest.json. Running the same command again resumes.",
    )
    collect.add_argument("--env", choices=["sim", "carracing"], default="sim",
                         help="environment (default: sim)")
    collect.add_argument("--episodes", type=int, required=True, help="number of episodes")
    collect.add_argument("--out", type=Path, required=True, help="output folder")
    collect.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    collect.add_argument("--steps", type=int, default=600,
                         help="frames per episode (default: 600, 20 s at 30 Hz)")
    collect.add_argument("--recovery-fraction", type=float, default=0.5,
                         help="share of episodes starting off the lane centre (default: 0.5)")
    collect.add_argument("--max-offset", type=float, default=1.2,
                         help="largest initial lateral offset of a recovery episode, metres "
                         "(default: 1.2)")
    collect.add_argument("--max-heading", type=float, default=6.0,
                         help="largest initial heading error of a recovery episode, degrees "
                         "(default: 6)")
    collect.add_argument("--steer-noise", type=float, default=0.0,
                         help="standard deviation of noise added to the executed curvature, "
                         "1/m; labels stay clean (default: 0)")
    collect.add_argument("--workers", type=int, default=1,
                         help="parallel worker processes (default: 1)")
    collect.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="environment setting, e.g. speed=12 or image_width=160; repeat")
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(func=_collect)

    # evaluate ------------------------------------------------------------------------
    evaluate = commands.add_parser(
        "evaluate",
        help="drive a policy in closed loop and measure departures and offsets",
        description="Drive a policy a fixed distance on fixed seeds; write <name>.json, "
        "<name>.csv, <name>_traces.npz and <name>.png.",
    )
    evaluate.add_argument("--policy", default="expert",
                          help="'expert', 'straight', or MODULE:FACTORY naming a function "
                          "that returns a policy (default: expert)")
    evaluate.add_argument("--env", choices=["sim", "carracing"], default="sim",
                          help="environment (default: sim)")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=None,
                          help="road seeds (default: 1000 to 1004)")
    evaluate.add_argument("--distance", type=float, default=1000.0,
                          help="distance per seed along the road, metres (default: 1000)")
    evaluate.add_argument("--perturb", action="append", default=[], metavar="NAME:STRENGTH",
                          help="perturbation such as noise:0.1, brightness:0.5, shadow:1, "
                          "occlusion:0.5 or camera:1; repeat to combine")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="environment setting, e.g. speed=12; repeat")
    evaluate.add_argument("--out", type=Path, default=Path("runs/driving-eval"),
                          help="output folder (default: runs/driving-eval)")
    evaluate.add_argument("--name", default=None, help="file stem and policy name in results")
    evaluate.add_argument("--no-plot", action="store_true", help="skip the PNG figure")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_evaluate)

    # render --------------------------------------------------------------------------
    render = commands.add_parser(
        "render",
        help="save frames seen while the expert drives, as PNG",
        description="Drive the expert and save every N-th frame as PNG, plus a contact "
        "sheet of all saved frames.",
    )
    render.add_argument("--env", choices=["sim", "carracing"], default="sim",
                        help="environment (default: sim)")
    render.add_argument("--seed", type=int, default=0, help="road seed (default: 0)")
    render.add_argument("--frames", type=int, default=4, help="frames to save (default: 4)")
    render.add_argument("--every", type=int, default=60,
                        help="steps between saved frames (default: 60)")
    render.add_argument("--scale", type=int, default=1,
                        help="enlarge saved images by this integer factor (default: 1)")
    render.add_argument("--perturb", action="append", default=[], metavar="NAME:STRENGTH",
                        help="perturbation to apply to the saved frames; repeat")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="environment setting; repeat")
    render.add_argument("--out", type=Path, required=True, help="output folder")
    render.set_defaults(func=_render)


def _parse_settings(items: list[str]) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into a dictionary, reading values as JSON when possible."""
    settings: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"invalid --set {item!r}; expected KEY=VALUE, e.g. speed=12")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, list):
            value = tuple(value)
        settings[key] = value
    return settings


def _load_policy(spec: str) -> Any:
    """Build the policy named on the command line."""
    from torchlnn.driving import ConstantPolicy, PurePursuitExpert

    if spec == "expert":
        return PurePursuitExpert()
    if spec == "straight":
        return ConstantPolicy(0.0)
    module_name, separator, attribute = spec.partition(":")
    if not separator:
        raise SystemExit(
            f"invalid --policy {spec!r}; expected expert, straight or MODULE:FACTORY"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SystemExit(f"cannot load policy factory {spec!r}: {error}") from None
    return factory()


def _collect(args: argparse.Namespace) -> int:
    from torchlnn.driving.collect import CollectionConfig, collect

    config = CollectionConfig(
        env=args.env,
        episodes=args.episodes,
        steps=args.steps,
        seed=args.seed,
        recovery_fraction=args.recovery_fraction,
        max_lateral_offset=args.max_offset,
        max_heading_error_deg=args.max_heading,
        steer_noise=args.steer_noise,
        env_overrides=_parse_settings(args.set),
        workers=args.workers,
    )
    manifest = collect(args.out, config, progress=not args.quiet)
    frames = sum(entry["frames"] for entry in manifest["episodes"])
    print(f"{len(manifest['episodes'])} episodes, {frames} frames in {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from torchlnn.driving.evaluation import DEFAULT_SEEDS, evaluate

    policy = _load_policy(args.policy)
    name = args.name or args.policy.replace(":", "-").replace(".", "-")
    result = evaluate(
        policy,
        env=args.env,
        seeds=args.seeds or DEFAULT_SEEDS,
        distance=args.distance,
        perturbations=args.perturb,
        env_overrides=_parse_settings(args.set),
        name=name,
        progress=not args.quiet,
    )
    paths = result.save(args.out, stem=name, plot=not args.no_plot)
    summary = result.summary
    print(
        f"{name} on {args.env}: {summary['departures']} departures in "
        f"{summary['distance_m'] / 1000:.2f} km ({summary['departures_per_km']:.2f}/km), "
        f"mean |offset| {summary['mean_abs_offset_m']:.3f} m, in lane "
        f"{100 * summary['in_lane_fraction']:.1f} %, steering rate RMS "
        f"{summary['steering_rate_rms']:.4f} 1/(m s)"
    )
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def _render(args: argparse.Namespace) -> int:
    import numpy as np

    from torchlnn.driving import PurePursuitExpert, make_env
    from torchlnn.driving.images import save_png, upscale
    from torchlnn.driving.perturbations import parse_perturbation
    from torchlnn.driving.policy import frame_to_float

    if args.frames < 1 or args.every < 1 or args.scale < 1:
        raise SystemExit("--frames, --every and --scale must be >= 1")
    settings = _parse_settings(args.set)
    settings.setdefault("episode_steps", args.frames * args.every + 1)
    env = make_env(args.env, **settings)
    perturbations = [parse_perturbation(text) for text in args.perturb]
    for index, perturbation in enumerate(perturbations):
        perturbation.reset(np.random.default_rng([args.seed, index]))
        perturbation.attach(env)
    expert = PurePursuitExpert()
    observation, info = env.reset(seed=args.seed)

    args.out.mkdir(parents=True, exist_ok=True)
    saved = []
    for step in range(args.frames * args.every):
        if step % args.every == 0:
            frame = observation
            if perturbations:
                image = frame_to_float(frame)
                for perturbation in perturbations:
                    image = perturbation(image)
                frame = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            path = args.out / f"frame_{len(saved):03d}.png"
            save_png(path, upscale(frame, args.scale))
            saved.append(frame)
        observation, _, terminated, truncated, info = env.step(
            np.array([expert(observation, info)], dtype=np.float32))
        if terminated or truncated:
            break
    env.close()
    sheet = np.concatenate(saved, axis=0)  # frames stacked vertically
    save_png(args.out / "frames.png", upscale(sheet, args.scale))
    print(f"saved {len(saved)} frames and frames.png in {args.out}")
    return 0
