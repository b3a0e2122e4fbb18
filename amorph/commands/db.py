"""``amorph db list|show|export``: the results in the store as tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amorph.files import write_text_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "db", help="list, show and export results from the store", description=__doc__
    )
    parser.add_argument(
        "--outputs", default="outputs", help="folder holding the embedded store (default outputs)"
    )
    parser.add_argument(
        "--store", help="jobflow JobStore file (e.g. MongoDB) instead of the embedded store"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="one line per composition").set_defaults(func=list_compositions)
    show = actions.add_parser("show", help="every temperature of one composition")
    show.add_argument("formula")
    show.set_defaults(func=show_composition)
    export = actions.add_parser("export", help="all compositions and temperatures as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(func=export_table)


def _results(args: argparse.Namespace):
    from amorph.results.reader import compositions
    from amorph.results.store import open_store

    return compositions(open_store(args.store, args.outputs))


def list_compositions(args: argparse.Namespace) -> int:
    results = _results(args)
    print(
        f"{'formula':12} {'atoms':>5} {'temperatures (K)':28} {'ρ at lowest T':>13} {'Ea(Li) eV':>10}"
    )
    for formula, summaries in results.items():
        temperatures = " ".join(f"{s['temperature_K']:.0f}" for s in summaries)
        ea = (summaries[-1].get("arrhenius") or {}).get("Li", {}).get("Ea_eV")
        print(
            f"{formula:12} {summaries[-1]['n_atoms']:5d} {temperatures:28} "
            f"{summaries[-1]['density_g_cm3']:13.3f} {'-' if ea is None else f'{ea:.3f}':>10}"
        )
    return 0


def show_composition(args: argparse.Namespace) -> int:
    from amorph.commands.run import print_table
    from amorph.results.reader import select

    print_table(select(_results(args), args.formula))
    return 0


def export_table(args: argparse.Namespace) -> int:
    from amorph.results.reader import export, rows

    text = export(rows(_results(args)), args.format)
    if args.output:
        write_text_atomic(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0
