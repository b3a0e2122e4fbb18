"""Random-forest and XGBoost regressors of D with the protocol of Zheng et al. (2024).

The target is D itself (cm²/s), as in the paper, so every RMSE here is in cm²/s. Inputs are the
temperature and the feature columns; missing feature values (NaN) are handled natively by both
libraries. The protocol: an 85/15 random split (random state 62), 5-fold cross-validated RMSE on the
training part, 100 trees; XGBoost with the paper's ``max_depth`` 4, ``reg_alpha`` 0.8 and
``learning_rate`` 0.1. ``reg_alpha`` is an L1 threshold on each leaf's summed residuals, so it
depends on the target's unit: on D in cm²/s (residuals ~1e-4) it zeroes every leaf and leaves a
constant model, so XGBoost fits D in ``XGB_TARGET_UNIT`` = 1e-4 cm²/s (1 Å²/ps, values of order 1;
the paper does not state its unit) and reports in cm²/s. Per-prediction uncertainty is the standard
deviation over the forest's trees, and over ``N_BOOTSTRAP`` = 100 XGBoost models fitted on bootstrap
resamples of the training part.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

RANDOM_STATE = 62
TEST_FRACTION = 0.15
CV_FOLDS = 5
N_TREES = 100
XGB_MAX_DEPTH = 4
XGB_REG_ALPHA = 0.8
XGB_LEARNING_RATE = 0.1
XGB_TARGET_UNIT = 1e-4
"""cm²/s: the unit of D that XGBoost fits (see the module docstring)."""
N_BOOTSTRAP = 100
MODEL_NAMES = {"rf": "random forest", "xgb": "XGBoost"}


def _rmse(truth: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - prediction) ** 2)))


def make_regressor(kind: str, jobs: int = 1, seed: int = RANDOM_STATE) -> RegressorMixin:
    """An unfitted ``"rf"`` or ``"xgb"`` regressor with the paper's settings."""
    if kind == "rf":
        return RandomForestRegressor(n_estimators=N_TREES, random_state=seed, n_jobs=jobs)
    if kind == "xgb":
        from xgboost import XGBRegressor

        booster = XGBRegressor(
            n_estimators=N_TREES,
            max_depth=XGB_MAX_DEPTH,
            reg_alpha=XGB_REG_ALPHA,
            learning_rate=XGB_LEARNING_RATE,
            random_state=seed,
            n_jobs=jobs,
        )
        return TransformedTargetRegressor(
            booster,
            func=partial(np.multiply, 1 / XGB_TARGET_UNIT),
            inverse_func=partial(np.multiply, XGB_TARGET_UNIT),
            check_inverse=False,
        )
    raise ValueError(f"unknown model kind {kind!r}")


def _members(kind: str, model, x_train: np.ndarray, y_train: np.ndarray, jobs: int) -> list:
    """The models whose spread is the uncertainty: the forest's trees (rf), or ``N_BOOTSTRAP``
    models fitted on bootstrap resamples of the training rows (xgb)."""
    if kind == "rf":
        return list(model.estimators_)
    rng = np.random.default_rng(RANDOM_STATE)
    members = []
    for member in range(N_BOOTSTRAP):
        sample = rng.integers(0, len(y_train), len(y_train))
        bootstrap = make_regressor(kind, jobs, seed=RANDOM_STATE + member + 1)
        members.append(bootstrap.fit(x_train[sample], y_train[sample]))
    return members


def spread(members: list, x: np.ndarray) -> np.ndarray:
    """Standard deviation of the ``members``' predictions for ``x``."""
    return np.std([member.predict(x) for member in members], axis=0)


@dataclass
class EnsembleFit:
    """Metrics (cm²/s) and per-row predictions of one regressor."""

    kind: str
    cv_rmse: float
    cv_rmse_std: float
    train_rmse: float
    test_rmse: float
    test_r2: float
    mean_test_uncertainty: float
    importances: dict[str, float]
    predictions: np.ndarray
    uncertainties: np.ndarray
    model: RegressorMixin
    members: list

    def metrics(self) -> dict:
        """The metrics and importances, without the predictions and models."""
        return {
            "cv_rmse": self.cv_rmse,
            "cv_rmse_std": self.cv_rmse_std,
            "train_rmse": self.train_rmse,
            "test_rmse": self.test_rmse,
            "test_r2": self.test_r2,
            "mean_test_uncertainty": self.mean_test_uncertainty,
            "importances": self.importances,
        }


def fit_ensemble(
    kind: str,
    x: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    train: np.ndarray,
    test: np.ndarray,
    jobs: int = 1,
) -> EnsembleFit:
    """Cross-validate on ``train``, fit on ``train``, evaluate on ``test``; predict every row."""
    x_train, y_train = x[train], y[train]
    folds = KFold(n_splits=min(CV_FOLDS, len(train)), shuffle=True, random_state=RANDOM_STATE)
    template = make_regressor(kind, jobs)
    fold_rmse = [
        _rmse(y_train[held], clone(template).fit(x_train[fit], y_train[fit]).predict(x_train[held]))
        for fit, held in folds.split(x_train)
    ]
    model = clone(template).fit(x_train, y_train)
    predictions = model.predict(x)
    fitted = getattr(model, "regressor_", model)  # XGBoost inside its target scaling
    importances = dict(zip(names, map(float, fitted.feature_importances_), strict=True))
    members = _members(kind, model, x_train, y_train, jobs)
    uncertainties = spread(members, x)
    return EnsembleFit(
        kind=kind,
        cv_rmse=float(np.mean(fold_rmse)),
        cv_rmse_std=float(np.std(fold_rmse)),
        train_rmse=_rmse(y_train, predictions[train]),
        test_rmse=_rmse(y[test], predictions[test]),
        test_r2=float(r2_score(y[test], predictions[test])) if len(test) > 1 else float("nan"),
        mean_test_uncertainty=float(np.mean(uncertainties[test])),
        importances=dict(sorted(importances.items(), key=lambda item: -item[1])),
        predictions=predictions,
        uncertainties=uncertainties,
        model=model,
        members=members,
    )
