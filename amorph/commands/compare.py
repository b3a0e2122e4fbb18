"""``amorph compare FORMULA``: a composition's results against reference data, saying which kind.

Two kinds of reference: tables given with ``--reference`` (e.g. the published AIMD of Zheng et al.
2024, read as they are; formats in :mod:`amorph.analysis.compare`): per temperature, volume per
atom and density errors, the D(Li) ratio with both uncertainties, and per RDF table the partial-RDF
R²; and, with ``--dft``, the stages' DFT audits in the store (``amorph audit``): per temperature,
the volume DFT's pressures imply and the pressure difference on the same frames.
"""

from __future__ import annotations

import argparse

from amorph.commands import add_store_options
from amorph.errors import InputError
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "compare",
        help="compare a composition's results with reference (e.g. AIMD) data",
        description=__doc__,
    )
    parser.add_argument("formula", help="composition in the store")
    parser.add_argument(
        "--reference",
        nargs="+",
        default=[],
        metavar="FILE",
        help="reference CSV files (e.g. published AIMD): volume/diffusivity and partial-RDF tables",
    )
    parser.add_argument(
        "--dft", action="store_true", help="compare with the stages' DFT audits in the store"
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
    """Print (or plot) each engine's results of the composition against the reference tables and/or
    its DFT audits."""
    from amorph.analysis.compare import compare, read_reference
    from amorph.results.outputs import Outputs
    from amorph.results.reader import Database

    if not args.reference and not args.dft:
        raise InputError("compare with what? give --reference FILE... and/or --dft")
    compositions = Database.open(Outputs(args.outputs, args.store)).compositions(
        args.formula, args.engine
    )
    if args.dft:
        rows = {e.doc.engine: [dft_row(s) for s in e.stages if s.audit] for e in compositions}
        if not any(rows.values()):
            raise InputError(f"no DFT audits of {args.formula} in the store: run `amorph audit`")
        if args.json and not args.reference:
            print(json_text(rows))
            return 0
        for entry in compositions:
            print_dft_rows(entry.formula, entry.doc.engine, rows[entry.doc.engine])
        if not args.reference:
            return 0
    reference = read_reference(args.reference, rdf_temperature_K=args.rdf_temperature)
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
        print(
            f"{entry.formula} ({entry.doc.engine}) against reference tables (e.g. published "
            f"AIMD): {', '.join(args.reference)}"
        )
        print(comparison.table())
    return 0


def dft_row(stage) -> dict:
    """A stage against its DFT audit: its volume, the one DFT implies, the pressure difference."""
    audit, doc = stage.audit, stage.doc
    return {
        "temperature_K": doc.temperature_K,
        "volume_per_atom_A3": doc.volume_per_atom_A3,
        "dft_volume_per_atom_A3": doc.volume_per_atom_A3 * (1 + audit.volume_shift),
        "volume_error_pct": -100 * audit.volume_shift / (1 + audit.volume_shift),
        "pressure_difference_GPa": audit.pressure_difference_GPa,
        "pressure_difference_sem_GPa": audit.pressure_difference_sem_GPa,
        "frames": len(audit.frame_indices),
        "dft": f"{audit.dft_engine} {audit.dft_settings.get('cutoff_eV', '')} eV".strip(),
        "disagreement": audit.disagreement,
    }


def print_dft_rows(formula: str, engine: str, rows: list[dict]) -> None:
    """One line per stage against its DFT audit, under a header naming ``formula``, ``engine``."""
    print(f"{formula} ({engine}) against DFT audits (single points on its own frames)")
    print(
        f"{'T (K)':>7} {'V/atom':>8} {'V/atom DFT':>10} {'error':>7} {'ΔP (GPa)':>14} frames  DFT"
    )
    for r in rows:
        print(
            f"{r['temperature_K']:7.0f} {r['volume_per_atom_A3']:8.2f} "
            f"{r['dft_volume_per_atom_A3']:10.2f} {r['volume_error_pct']:+6.1f}% "
            f"{r['pressure_difference_GPa']:+7.2f} ± {r['pressure_difference_sem_GPa']:4.2f} "
            f"{r['frames']:6d}  {r['dft']}{'  dft_disagreement' if r['disagreement'] else ''}"
        )


def _per_engine(path: str, engine: str) -> str:
    stem, dot, suffix = path.rpartition(".")
    tag = engine.replace(":", "-").replace("/", "-")
    return f"{stem}-{tag}.{suffix}" if dot else f"{path}-{tag}"
