"""Training RF, XGBoost and SISSO models of D on one feature table, with one shared split."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import IO

import numpy as np
from sklearn.model_selection import train_test_split

from amorph.constants import K_B_EV
from amorph.errors import InputError
from amorph.regression.dataset import INVERSE_KT, TEMPERATURE_COLUMN, Table, read_table
from amorph.regression.ensembles import (
    CV_FOLDS,
    N_BOOTSTRAP,
    N_TREES,
    RANDOM_STATE,
    TEST_FRACTION,
    XGB_LEARNING_RATE,
    XGB_MAX_DEPTH,
    XGB_REG_ALPHA,
    XGB_TARGET_UNIT,
    EnsembleFit,
    fit_ensemble,
)
from amorph.regression.predict import SavedModel, ensemble_model, sisso_model
from amorph.regression.sisso import SissoModel, fit_sisso

MODELS = ("rf", "xgb", "sisso")
MIN_SISSO_TRAIN_ROWS = 5


@dataclass
class TrainingResult:
    """Fitted models of one table and the split they share."""

    table: Table
    train: np.ndarray
    test: np.ndarray
    ensembles: dict[str, EnsembleFit] = field(default_factory=dict)
    sisso_models: list[SissoModel] = field(default_factory=list)
    sisso_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    sisso_predictions: list[np.ndarray] = field(default_factory=list)
    sisso_settings: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """A JSON-able summary; RMSEs of RF/XGBoost in cm²/s, of SISSO in ln(D / cm²/s)."""
        summary = {
            "table": {
                "rows": len(self.table),
                "train_rows": len(self.train),
                "test_rows": len(self.test),
                "target": self.table.target_name,
                "features": [TEMPERATURE_COLUMN, *self.table.feature_names],
            },
            "protocol": {
                "fit_target": f"{self.table.target_name} in cm2/s (not its logarithm)",
                "test_fraction": TEST_FRACTION,
                "random_state": RANDOM_STATE,
                "cv_folds": CV_FOLDS,
                "n_trees": N_TREES,
                "xgb_max_depth": XGB_MAX_DEPTH,
                "xgb_reg_alpha": XGB_REG_ALPHA,
                "xgb_learning_rate": XGB_LEARNING_RATE,
                "xgb_target_unit_cm2_s": XGB_TARGET_UNIT,
                "xgb_bootstrap_models": N_BOOTSTRAP,
            },
            **{kind: fit.metrics() for kind, fit in self.ensembles.items()},
        }
        if self.sisso_models:
            truth = np.log(self.table.target[self.sisso_rows])
            test = np.isin(self.sisso_rows, self.test)
            summary["sisso"] = {
                str(len(model.descriptors)): {
                    "equation": model.equation,
                    "descriptors": [d.name for d in model.descriptors],
                    "coefficients": model.coefficients.tolist(),
                    "intercept": model.intercept,
                    "rmse_train": model.rmse_train,
                    "rmse_test": float(np.sqrt(np.mean((predicted[test] - truth[test]) ** 2)))
                    if test.any()
                    else None,
                }
                for model, predicted in zip(self.sisso_models, self.sisso_predictions, strict=True)
            }
            summary["sisso_settings"] = self.sisso_settings
        return _json_safe(summary)

    def saved_models(self, source: str) -> dict[str, SavedModel]:
        """Every fitted model, trained on ``source``, keyed by file stem (rf, xgb, sisso<N>)."""
        inputs = (TEMPERATURE_COLUMN, *self.table.feature_names)
        models = {kind: ensemble_model(fit, inputs, source) for kind, fit in self.ensembles.items()}
        models |= {f"sisso{len(m.descriptors)}": sisso_model(m, source) for m in self.sisso_models}
        return models

    def write_predictions(self, handle: IO[str]) -> None:
        """CSV of every row: split, truth and each model's prediction (and uncertainty if known)."""
        columns = ["formula", TEMPERATURE_COLUMN, self.table.target_name, "split"]
        for kind in self.ensembles:
            columns += [f"{kind}_prediction", f"{kind}_uncertainty"]
        columns += [f"sisso{len(m.descriptors)}_ln_D" for m in self.sisso_models]
        split = np.full(len(self.table), "train", dtype=object)
        split[self.test] = "test"
        sisso_values = np.full((len(self.table), len(self.sisso_models)), np.nan)
        for k, predicted in enumerate(self.sisso_predictions):
            sisso_values[self.sisso_rows, k] = predicted
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in range(len(self.table)):
            values = [self.table.temperature[row], self.table.target[row]]
            for fit in self.ensembles.values():
                values += [fit.predictions[row], fit.uncertainties[row]]
            cells = [f"{v:.6g}" if math.isfinite(v) else "" for v in [*values, *sisso_values[row]]]
            writer.writerow([self.table.formulas[row], *cells[:2], split[row], *cells[2:]])


def _json_safe(value):
    """NaN and infinities become null so that the summary is strict JSON."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _sisso_data(table: Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows usable for ln D (positive target); the primary columns complete on them, plus 1/kT."""
    rows = np.flatnonzero(table.target > 0)
    columns = {INVERSE_KT: 1.0 / (K_B_EV * table.temperature[rows])}
    for index, name in enumerate(table.feature_names):
        values = table.features[rows, index]
        if np.isfinite(values).all():
            columns[name] = values
    return rows, columns


def train_models(
    table: Table,
    *,
    models: tuple[str, ...] = MODELS,
    complexity: int = 1,
    max_terms: int = 6,
    sis_size: int = 50,
    jobs: int = 1,
) -> TrainingResult:
    """Fit the requested models ("rf", "xgb", "sisso") on one shared 85/15 split of ``table``."""
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise InputError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    train, test = train_test_split(
        np.arange(len(table)), test_size=TEST_FRACTION, random_state=RANDOM_STATE
    )
    result = TrainingResult(table, np.sort(train), np.sort(test))
    if "sisso" in models:
        rows, columns = _sisso_data(table)
        fit_rows = np.isin(rows, result.train)
        if fit_rows.sum() < MIN_SISSO_TRAIN_ROWS:
            raise InputError(
                f"SISSO needs at least {MIN_SISSO_TRAIN_ROWS} training rows with a positive "
                f"{table.target_name}; leave it out with --models rf,xgb"
            )
    x = np.column_stack([table.temperature, table.features])
    names = (TEMPERATURE_COLUMN, *table.feature_names)
    for kind in ("rf", "xgb"):
        if kind in models:
            result.ensembles[kind] = fit_ensemble(
                kind, x, table.target, names, result.train, result.test, jobs
            )
    if "sisso" in models:
        result.sisso_models = fit_sisso(
            {name: values[fit_rows] for name, values in columns.items()},
            np.log(table.target[rows[fit_rows]]),
            complexity=complexity,
            max_terms=max_terms,
            sis_size=sis_size,
        )
        result.sisso_rows = rows
        result.sisso_predictions = [model.predict(columns) for model in result.sisso_models]
        result.sisso_settings = {
            "target": f"ln({table.target_name} / cm2/s)",
            "primary_features": list(columns),
            "left_out_features": [n for n in table.feature_names if n not in columns],
            "complexity": complexity,
            "sis_size": sis_size,
            "train_rows": int(fit_rows.sum()),
            "test_rows": int((~fit_rows).sum()),
        }
    return result


__all__ = [
    "SavedModel",
    "SissoModel",
    "Table",
    "TrainingResult",
    "fit_sisso",
    "read_table",
    "train_models",
]
