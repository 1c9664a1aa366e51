"""``python -m torchlnn.experiments NAME --model MODEL ...``, same as ``torchlnn experiment``."""

from __future__ import annotations

import argparse
import sys

from torchlnn.cli.experiment import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchlnn.experiments")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["experiment", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
