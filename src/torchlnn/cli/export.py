"""``torchlnn export``: write a saved layer as TorchScript, a torch.export program, ONNX or C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("torchscript", "program", "onnx", "c")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="export a saved layer to TorchScript, torch.export, ONNX or C99",
        description=(
            "Export a layer saved with torchlnn.save. Every form runs at any sequence length: "
            "'step' takes (x, state, dt) and returns (output, new_state); 'sequence' takes "
            "(x, state, timespans) and returns (output, final_state) with a dynamic time axis. "
            "'c' writes NAME.c and NAME.h with a fixed-memory step function."
        ),
    )
    parser.add_argument("format", choices=FORMATS, help="the output format")
    parser.add_argument("model", type=Path, help="a file written by torchlnn.save")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="the file to write (.pt for torchscript, .pt2 for program, .onnx for onnx), or "
        "for c an existing folder to write NAME.c and NAME.h into",
    )
    parser.add_argument(
        "--form",
        choices=("sequence", "step"),
        default="sequence",
        help="whole sequences (default) or one step; not used by c, which is always one step",
    )
    parser.add_argument(
        "--name",
        default="lnn",
        help="c only: the file name and the prefix of every C symbol (default: lnn)",
    )
    parser.add_argument(
        "--runner",
        action="store_true",
        help="c only: also write NAME_runner.c, a desktop program that runs or times the step",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the layer, export it and print what was written; return the exit status."""
    import torchlnn
    from torchlnn import export

    try:
        model = torchlnn.load(args.model)
        if args.format == "c":
            written = export.to_c(model, args.output, args.name)
            print(f"wrote {written.source} and {written.header}")
            print(
                f"  input size {written.input_size}, output size {written.output_size}, state of "
                f"{written.state_size} floats ({written.state_bytes} bytes of RAM between "
                f"steps), {written.const_bytes} bytes of constant weights and indices"
            )
            if args.runner:
                print(f"wrote {export.write_c_runner(written)}")
        elif args.format == "onnx":
            print(f"wrote {export.to_onnx(model, args.output, form=args.form)}")
        elif args.format == "program":
            export.to_exported_program(model, args.output, form=args.form)
            print(f"wrote {args.output}")
        else:
            export.to_torchscript(model, args.output, form=args.form)
            print(f"wrote {args.output}")
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"torchlnn export: error: {error}", file=sys.stderr)
        return 2
    return 0
