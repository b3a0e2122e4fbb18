"""``amorph predict``: Li diffusivity from descriptors, by the published SISSO model or a saved one.

Inputs are structure files (CIF, POSCAR, pymatgen JSON), amorph trajectories (.npz, descriptors
averaged over ``--frames`` frames) and feature tables (.csv, as ``amorph features`` writes them);
``--formula`` adds that composition's results in the store, predicted at every stored temperature
beside the simulated D. The model is the published 4-term SISSO model of Zheng et al. (2024) unless
``--model`` names one that ``amorph train --save`` wrote.
"""

from __future__ import annotations

import argparse
import sys

from amorph.commands import add_featurise_options, add_store_options
from amorph.errors import InputError
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "predict",
        help="Li diffusivity of structures, trajectories or stored results from a model",
        description=__doc__,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="STRUCTURE_OR_TRAJECTORY",
        help="structure files, amorph trajectories (.npz) or feature tables (.csv)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        metavar="T",
        help="temperatures (K) to predict at (default: each table row's or stored result's own)",
    )
    parser.add_argument(
        "--model",
        metavar="FILE",
        help="a model saved by amorph train --save (default: the published 4-term SISSO model)",
    )
    parser.add_argument("--formula", help="also this composition's results in the store")
    parser.add_argument("--engine", help="with --formula, only the results of this engine")
    add_featurise_options(parser, frames=10)
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON")
    add_store_options(parser)
    parser.set_defaults(func=run)


def _number(value: float | None, sigma: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" + ("" if sigma is None else f" ± {sigma:.2g}")


def _report(label: str, output: str, predictions: list[dict]) -> str:
    simulated = any(p["D_simulated_cm2_s"] is not None for p in predictions)
    header = ["source", "T (K)", "predicted D (cm²/s)"]
    header += ["simulated D (cm²/s)", "predicted/simulated"] if simulated else []
    rows = []
    for p in predictions:
        row = [p["source"], f"{p['temperature']:.0f}", _number(p["D_cm2_s"], p["D_sigma_cm2_s"])]
        if simulated:
            truth = p["D_simulated_cm2_s"]
            ratio = None if not truth else p["D_cm2_s"] / truth
            row += [_number(truth), _number(ratio)]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    table = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    return "\n".join([f"# D(Li) from {label}, which models {output}", *map(str.rstrip, table)])


def run(args: argparse.Namespace) -> int:
    """Predict with the model for the inputs' and stored results' rows; print them (or JSON)."""
    from amorph.descriptors import EXTENDED_FEATURE_NAMES
    from amorph.descriptors.table import features_table, read_table_rows
    from amorph.regression.predict import load_model, predict_rows, published_sisso

    if not args.inputs and not args.formula:
        raise InputError("give structure files, trajectories or feature tables, or --formula")
    if args.temperature and min(args.temperature) <= 0:
        raise InputError(f"--temperature must be positive, got {min(args.temperature)}")
    model = load_model(args.model) if args.model else published_sisso()
    tables = [path for path in args.inputs if path.endswith(".csv")]
    structures = [path for path in args.inputs if not path.endswith(".csv")]
    stages = []
    if args.formula:
        from amorph.results.outputs import Outputs
        from amorph.results.reader import Database

        stages = Database.open(Outputs(args.outputs, args.store)).stages(args.formula, args.engine)
    rows = features_table(
        stages,
        structures,
        frames=args.frames,
        extended=bool(set(model.inputs) & set(EXTENDED_FEATURE_NAMES)),
        jobs=args.jobs,
        include_unconverged=args.include_unconverged,
    )
    rows += [row for path in tables for row in read_table_rows(path)]
    if not rows:
        raise InputError(
            f"no converged results of {args.formula} to predict for (--include-unconverged)"
        )
    predictions = predict_rows(model, rows, args.temperature or ())
    if args.json:
        print(json_text(predictions), file=sys.stdout)
    else:
        print(_report(model.label, model.output, predictions), file=sys.stdout)
    return 0
