# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Hidden aliases for renamed command-line flags (issue #31: one CLI convention).

Every `univigu` subcommand's flags are kebab-case, and one concept has one name across subcommands
(tests/test_cli_convention.py); an earlier spelling (`--max_text_length`, `--frames`, `--pipeline`, ...) still parses
for one release, hidden from `--help`. Only argparse is imported here: `univigu --help` stays torch-free."""

from __future__ import annotations

import argparse


def add_hidden_alias(parser, action: argparse.Action, *old_names: str) -> argparse.Action:
    """Let `action` (an option of `parser`, or of one of its argument groups) also answer to `old_names`: they parse
    exactly as the new name does (same type, choices, `required`), while `--help`, the usage line and error messages
    show only the new name. Returns `action`."""
    for name in old_names:
        if name in parser._option_string_actions:
            raise ValueError(f"{name} is already an option of {parser.prog}")
        # argparse finds an option string's action in this table (argument groups share their parser's); the action's
        # own option_strings, which help, usage and errors print, keep only the new name.
        parser._option_string_actions[name] = action
    return action


def add_argument(parser, *names: str, old: tuple = (), **kwargs) -> argparse.Action:
    """`parser.add_argument(*names, **kwargs)`, with the earlier spellings `old` as hidden aliases."""
    return add_hidden_alias(parser, parser.add_argument(*names, **kwargs), *old)


def add_text_source_argument(parser, default, help: str) -> None:
    """`--text-source {uniform,mask}` (the text stream's noise source: uniform over the vocabulary, or a [MASK] token
    with its own embedding row), with the earlier `--text-mask-token` (= mask) and `--no-text-mask-token`
    (= uniform) as hidden aliases. Sets `args.text_source`."""
    parser.add_argument("--text-source", choices=("uniform", "mask"), default=default, help=help)
    for flag, source in (("--text-mask-token", "mask"), ("--no-text-mask-token", "uniform")):
        parser.add_argument(flag, dest="text_source", action="store_const", const=source, default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


def hidden_aliases(parser: argparse.ArgumentParser) -> dict:
    """`{old spelling: new option string}` of every hidden alias of `parser` (not of its subcommands)."""
    return {name: action.option_strings[0] for name, action in parser._option_string_actions.items()
            if name not in action.option_strings}


__all__ = ["add_argument", "add_hidden_alias", "add_text_source_argument", "hidden_aliases"]
