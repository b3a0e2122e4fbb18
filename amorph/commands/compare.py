"""``amorph compare FORMULA --reference FILE...``: a composition's results against reference data.

Per temperature: volume per atom and density errors, the D(Li) ratio with both uncertainties; per
reference RDF table: partial-RDF R² per pair and pooled. Reference formats: see
:mod:`amorph.analysis.compare` (the AIMD tables of Zheng et al. 2024 read as they are).
"""

from __future__ import annotations

import argparse

from amorph.commands import add_store_options
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare a composition's results with reference (e.g. AIMD) data",
        description=__doc__,
    )
    parser.add_argument("formula", help="composition in the store")
    parser.add_argument(
        "--reference",
        nargs="+",
        required=True,
        metavar="FILE",
        help="reference CSV files: volume/diffusivity tables and partial-RDF tables",
    )
    parser.add_argument("--engine", help="the results of this engine (default: each engine's)")
    parser.add_argument(
        "--rdf-temperature",
        type=float,
        default=5000.0,
        metavar="K",
        help="temperature of RDF tables without a temperature_K column (default 5000)",
    )
    parser.add_argument("--plot", metavar="PNG", help="write the parity and RDF overlay plot here")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from amorph.analysis.compare import compare, read_reference
    from amorph.results.reader import Database

    reference = read_reference(args.reference, rdf_temperature_K=args.rdf_temperature)
    compositions = Database.open(args.store, args.outputs).compositions(args.formula, args.engine)
    results = []
    for entry in compositions:
        comparison = compare([s.summary for s in entry.stages], reference, entry.formula)
        results.append((entry, comparison))
        if args.plot:
            from amorph.analysis.plots import plot_comparison

            path = args.plot if len(compositions) == 1 else _per_engine(args.plot, entry.doc.engine)
            plot_comparison(comparison, path)
    if args.json:
        print(json_text({e.doc.engine: c.as_dict() for e, c in results}))
        return 0
    for entry, comparison in results:
        print(f"{entry.formula} ({entry.doc.engine}) against {', '.join(args.reference)}")
        print(comparison.table())
    return 0


def _per_engine(path: str, engine: str) -> str:
    stem, dot, suffix = path.rpartition(".")
    tag = engine.replace(":", "-").replace("/", "-")
    return f"{stem}-{tag}.{suffix}" if dot else f"{path}-{tag}"
