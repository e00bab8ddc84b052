# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The `univigu` command: `univigu generate`, `univigu caption`, `univigu params`, `univigu convert ...`,
`univigu evaluate ...`."""

import argparse
import importlib
import sys

# (module, function) pairs that add one subcommand each; imported lazily so a missing optional
# dependency of one subcommand (e.g. `evaluate` for `univigu evaluate`) does not break the others.
_SUBCOMMANDS = [
    ("univigu.models.parameter_report", "add_params_parser"),
    ("univigu.conversion.cli", "add_convert_parser"),
    ("univigu.evaluation.cli", "add_evaluate_parser"),
    ("univigu.pipelines.cli", "add_generate_parser"),
    ("univigu.pipelines.cli", "add_caption_parser"),
    # other subcommands register here
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="univigu", description="Uni-ViGU on diffusers: tools.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name, function_name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            # An optional extra that is not installed (e.g. `evaluate`) hides only its own subcommand.
            if error.name and error.name.startswith("univigu") and error.name != module_name:
                raise
            continue
        getattr(module, function_name)(subparsers)
    return parser


def main(argv=None) -> int:
    """Runs one subcommand; returns its exit status (0: done; 1: an error, printed on stderr; 2: a bad flag).

    As the `univigu` command (`argv` None: the arguments come from the command line), a problem with the user's input
    (a missing or unreadable file, an output that exists, a value out of range: `ValueError`, `OSError`) ends it with
    `univigu <subcommand>: error: <message>` and exit status 1, without a traceback. Called from Python with `argv`,
    those exceptions are raised to the caller."""
    args = build_parser().parse_args(argv)
    if argv is not None:
        return int(args.func(args) or 0)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as error:
        print(f"univigu {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
