"""``amorph train``: random forest, XGBoost and SISSO models of Li diffusivity from a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amorph.commands import int_at_least
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "train",
        help="fit RF, XGBoost and SISSO models of D(T) to a feature table",
        description=(
            "Fit random forest and XGBoost regressors of the diffusivity (cm²/s) and a SISSO-style "
            "symbolic regression of ln D on a CSV table with 'formula', 'temperature' (K), a "
            "target column and numeric feature columns (e.g. the output of 'amorph features'). "
            "Protocol of Zheng et al. (2024): 85/15 split with random state 62, 5-fold CV on the "
            "training part, 100 trees, XGBoost with max_depth 4, reg_alpha 0.8 and learning rate "
            "0.1, and 100 bootstrap XGBoost models for its error bars."
        ),
    )
    parser.add_argument("table", help="CSV feature table")
    parser.add_argument(
        "--target", default="D_cm2_s", help="target diffusivity column in cm²/s (default D_cm2_s)"
    )
    parser.add_argument(
        "--exclude", nargs="+", default=[], metavar="COLUMN", help="columns that are not features"
    )
    parser.add_argument(
        "--models",
        default="rf,xgb,sisso",
        help="comma-separated subset of rf,xgb,sisso (default: all three)",
    )
    parser.add_argument(
        "--max-terms", type=int_at_least(1), default=6, help="largest SISSO model (default 6)"
    )
    parser.add_argument(
        "--complexity",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="SISSO operator rungs (default 1)",
    )
    parser.add_argument(
        "--sis-size",
        type=int_at_least(1),
        default=50,
        help="features screened per SISSO dimension (default 50)",
    )
    parser.add_argument(
        "--jobs",
        type=int_at_least(1),
        default=1,
        help="parallel jobs for the tree models (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics summary as JSON")
    parser.add_argument(
        "--plots", metavar="DIR", help="write parity and importance plots (PNG) here"
    )
    parser.add_argument("--predictions", metavar="CSV", help="write every row's predictions here")
    parser.add_argument(
        "--save",
        metavar="DIR",
        help="save the fitted models here (rf.pkl, xgb.pkl, sisso<N>.pkl), for amorph predict "
        "--model",
    )
    parser.set_defaults(func=run)


def _report(metrics: dict) -> str:
    table = metrics["table"]
    lines = [
        (
            f"{table['rows']} rows (train {table['train_rows']}, test {table['test_rows']}), "
            f"target {table['target']}"
        )
    ]
    for kind, label in (("rf", "random forest"), ("xgb", "XGBoost")):
        if kind in metrics:
            m = metrics[kind]
            top = ", ".join(list(m["importances"])[:3])
            lines.append(
                f"{label}: CV RMSE {m['cv_rmse']:.3g} ± {m['cv_rmse_std']:.2g} cm²/s, "
                f"test RMSE {m['test_rmse']:.3g} cm²/s; most important: {top}"
            )
    for n_terms, model in metrics.get("sisso", {}).items():
        test = "n/a" if model["rmse_test"] is None else f"{model['rmse_test']:.3g}"
        lines.append(
            f"SISSO {n_terms}: RMSE ln D train {model['rmse_train']:.3g}, test {test}: "
            f"{model['equation']}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Fit the models to the table and print their metrics; write plots, predictions and models if
    asked."""
    from amorph.errors import InputError
    from amorph.files import atomic_path
    from amorph.regression import read_table, train_models

    models = tuple(name.strip() for name in args.models.split(",") if name.strip())
    if not models:
        raise InputError("--models names no model")
    table = read_table(args.table, target=args.target, exclude=tuple(args.exclude))
    result = train_models(
        table,
        models=models,
        complexity=args.complexity,
        max_terms=args.max_terms,
        sis_size=args.sis_size,
        jobs=args.jobs,
    )
    metrics = result.metrics()
    if args.plots:
        from amorph.regression.parity import plot_results

        plot_results(result, args.plots)
    if args.predictions:
        with atomic_path(Path(args.predictions)) as tmp, open(tmp, "w", newline="") as handle:
            result.write_predictions(handle)
    if args.save:
        from amorph.regression.predict import save_model

        for stem, model in result.saved_models(Path(args.table).name).items():
            save_model(model, Path(args.save) / f"{stem}.pkl")
    print(json_text(metrics) if args.json else _report(metrics), file=sys.stdout)
    return 0
