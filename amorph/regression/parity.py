"""Parity and feature-importance plots of a training run (PNG, matplotlib Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from amorph.regression.ensembles import MODEL_NAMES

if TYPE_CHECKING:
    from amorph.regression.training import TrainingResult

TOP_IMPORTANCES = 20


def _parity(ax, truth, prediction, sigma, train, test, label: str, log_axes: bool) -> None:
    for rows, name, marker in ((train, "train", "o"), (test, "test", "s")):
        ax.errorbar(truth[rows], prediction[rows], yerr=None if sigma is None else sigma[rows],
                    fmt=marker, ms=4, alpha=0.7, elinewidth=0.8, label=name)  # fmt: skip
    finite = np.concatenate([truth, prediction])
    finite = finite[np.isfinite(finite) & (finite > 0 if log_axes else True)]
    low, high = finite.min(), finite.max()
    ax.plot([low, high], [low, high], "k--", lw=1)
    if log_axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.legend()


def plot_results(result: TrainingResult, directory: str | Path) -> list[Path]:
    """Write parity_<model>.png and importance_<model>.png for each fitted model; return paths."""
    from amorph.analysis.plots import canvas, figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    target = result.table.target
    unit = f"{result.table.target_name} (cm²/s)"
    for kind, fit in result.ensembles.items():
        fig, ax = figure(5, 5)
        _parity(ax, target, fit.predictions, fit.uncertainties, result.train, result.test, unit,
                log_axes=bool((target > 0).all() and (fit.predictions > 0).all()))  # fmt: skip
        ax.set_title(f"{MODEL_NAMES[kind]}: test RMSE {fit.test_rmse:.3g} cm²/s")
        written.append(save(fig, directory / f"parity_{kind}.png"))
        top = list(fit.importances.items())[:TOP_IMPORTANCES][::-1]
        fig, ax = figure(6, 0.3 * len(top) + 1.2)
        ax.barh([name for name, _ in top], [value for _, value in top])
        ax.set_xlabel("importance")
        ax.set_title(f"{MODEL_NAMES[kind]} feature importances")
        written.append(save(fig, directory / f"importance_{kind}.png"))
    if result.sisso_models:
        n_models = len(result.sisso_models)
        columns = min(3, n_models)
        rows = math.ceil(n_models / columns)
        fig = canvas(4 * columns, 4 * rows)
        axes = fig.subplots(rows, columns, squeeze=False)
        truth = np.log(target[result.sisso_rows])
        train = np.isin(result.sisso_rows, result.train)
        for ax, model, predicted in zip(
            axes.flat, result.sisso_models, result.sisso_predictions, strict=False
        ):
            _parity(ax, truth, predicted, None, train, ~train, "ln D", log_axes=False)
            ax.set_title(
                f"{len(model.descriptors)}-term model: RMSE {model.rmse_train:.3g} (train)",
                fontsize=9,
            )
        for ax in list(axes.flat)[n_models:]:
            ax.set_visible(False)
        written.append(save(fig, directory / "parity_sisso.png"))
    return written
