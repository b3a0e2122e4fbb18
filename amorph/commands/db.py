"""``amorph db list|show|export``: the results in the store, as tables, files or result folders.

Every action opens the store read-only and accepts ``--outputs``/``--store``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amorph.commands import add_store_options
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``db`` parser and its ``list``, ``show`` and ``export`` actions."""
    parser = subparsers.add_parser(
        "db", help="list, show and export results from the store", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per composition and engine")
    add_store_options(listing)
    listing.set_defaults(func=list_compositions)
    show = actions.add_parser("show", help="every temperature of one composition")
    show.add_argument("formula")
    show.add_argument("--engine", help="only the results of this engine")
    show.add_argument("--json", action="store_true", help="the stage documents as JSON")
    add_store_options(show)
    show.set_defaults(func=show_composition)
    export = actions.add_parser(
        "export", help="all results as a CSV/JSON table, or as result folders"
    )
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("-o", "--output", help="table file to write (default: standard output)")
    export.add_argument(
        "--folders",
        metavar="DIR",
        help="write a folder per composition and temperature (structures, plots, trajectory)",
    )
    add_store_options(export)
    export.set_defaults(func=export_results)


def _database(args: argparse.Namespace):
    from amorph.results.outputs import Outputs
    from amorph.results.reader import Database

    return Database.open(Outputs(args.outputs, args.store))


def list_compositions(args: argparse.Namespace) -> int:
    """Print one line per composition and engine in the store (or why it is empty)."""
    from amorph.commands.tables import print_compositions
    from amorph.errors import EmptyStoreError

    try:
        compositions = _database(args).compositions()
    except EmptyStoreError as exc:
        print(exc)
        return 0
    print_compositions(compositions)
    return 0


def show_composition(args: argparse.Namespace) -> int:
    """Print every temperature of the composition per engine, with its DFT audits, or JSON."""
    from amorph.commands.tables import print_audits, print_stages, print_tuning

    database = _database(args)
    for entry in database.compositions(args.formula, args.engine):
        if args.json:
            print(json_text([stage.summary for stage in entry.stages]))
            continue
        print(f"{entry.formula} ({entry.doc.engine}, finished {entry.completed_at})")
        print_stages(entry.stages)
        audits = [stage.audit for stage in entry.stages if stage.audit is not None]
        if audits:
            print("\nDFT audits:")
            print_audits(audits)
    tuning = None if args.json else database.tuning(args.formula)
    if tuning is not None:
        print()
        print_tuning(tuning)
    return 0


def export_results(args: argparse.Namespace) -> int:
    """Write the results as folders under ``--folders``, and as a CSV/JSON table to ``--output``
    (standard output if neither is given)."""
    from amorph.files import write_text_atomic
    from amorph.results.export import format_rows, rows, write_folders

    compositions = _database(args).compositions()
    if args.folders:
        folders = write_folders(compositions, args.folders)
        print(f"wrote {len(folders)} result folders under {args.folders}", file=sys.stderr)
        if not args.output:
            return 0
    text = format_rows(rows(compositions), args.format)
    if args.output:
        write_text_atomic(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0
