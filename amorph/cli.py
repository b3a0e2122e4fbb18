"""The ``amorph`` command line.

Each sub-command lives in ``amorph.commands.<name>`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` to a callable taking the parsed arguments and returning an exit
code. Sub-command modules import heavy dependencies (torch, jobflow) inside ``func`` so that light
commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from typing import NoReturn

from amorph import __version__
from amorph.errors import AmorphError

COMMANDS = (
    "run",
    "campaign",
    "submit",
    "db",
    "limit",
    "analyze",
    "features",
    "train",
    "predict",
    "publish",
    "compare",
    "audit",
    "tune",
)


class Parser(argparse.ArgumentParser):
    """An argument parser (and, through ``add_subparsers``, its sub-parsers) whose errors are one
    ``amorph: error:`` line and exit status 1, as every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        """Exit with status 1 after one ``amorph: error:`` line pointing to ``--help``."""
        self.exit(1, f"amorph: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``amorph`` parser, with the sub-command of every module in ``COMMANDS``."""
    parser = Parser(prog="amorph", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"amorph {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"amorph.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    if not args.verbose:  # library deprecation and tensor warnings are noise on a command line
        warnings.simplefilter("ignore")
    try:
        return int(args.func(args) or 0)
    except AmorphError as exc:
        print(f"amorph: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("amorph: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
