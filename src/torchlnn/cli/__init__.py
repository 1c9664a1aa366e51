"""The ``torchlnn`` command.

Each sub-command lives in its own module of this package and defines ``register(subparsers)``,
which adds its parser and sets ``func`` to the function that runs it. Modules are imported only
when the command line is parsed, so ``import torchlnn`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that register sub-commands, in the order they appear in ``torchlnn --help``.
COMMAND_MODULES = [
    "torchlnn.cli.lane_keeping",
    "torchlnn.cli.driving",
    "torchlnn.cli.experiment",
    "torchlnn.cli.plot",
    "torchlnn.cli.export",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    from torchlnn import __version__

    parser = argparse.ArgumentParser(
        prog="torchlnn",
        description="Liquid neural networks for PyTorch: train, evaluate, inspect and export.",
    )
    parser.add_argument("--version", action="version", version=f"torchlnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``torchlnn`` command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("torchlnn: interrupted (Ctrl-C).", file=sys.stderr)
        return 130  # the usual exit status after Ctrl-C
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
