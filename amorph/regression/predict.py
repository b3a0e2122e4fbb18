"""Li diffusivity from descriptors: the published SISSO model and the models ``amorph train`` saved.

A :class:`SavedModel` is a fitted model with the input columns it reads, their units and what it
predicts. ``amorph train --save DIR`` writes one file per model (``rf.pkl``, ``xgb.pkl``,
``sisso<N>.pkl``) with :func:`save_model`; :func:`load_model` reads one back. The files are pickles:
load only files you trust. :func:`published_sisso` is the 4-term model of Zheng et al. (2024),

    ln(D / cm²s⁻¹) = -0.3339406718·(1/k_BT) - 0.1064562223·LNC + 0.1124328014·LLB
                     - 1.946232403·PF - 3.550389618,   1/k_BT in eV⁻¹,

whose published RMSE is 0.3645 in ln D on the paper's 792 rows.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from amorph import __version__
from amorph.constants import K_B_EV
from amorph.errors import InputError
from amorph.files import atomic_path
from amorph.regression.dataset import INVERSE_KT, TEMPERATURE_COLUMN
from amorph.regression.ensembles import MODEL_NAMES, EnsembleFit, spread
from amorph.regression.sisso import Descriptor, SissoModel

FORMAT = "amorph-model"
FORMAT_VERSION = 1
D_UNIT = "D in cm²/s"
LN_D_UNIT = "ln(D / cm²/s)"
PUBLISHED_SISSO_TERMS = {
    INVERSE_KT: -0.3339406718,
    "LNC": -0.1064562223,
    "LLB": 0.1124328014,
    "PF": -1.946232403,
}
PUBLISHED_SISSO_INTERCEPT = -3.550389618
PUBLISHED_SISSO_RMSE = 0.3645


def column_units(names: Iterable[str]) -> dict[str, str]:
    """Unit of each column as amorph computes it ("?" for columns amorph does not compute)."""
    from amorph.descriptors import FEATURE_UNITS

    known = {TEMPERATURE_COLUMN: "K", INVERSE_KT: "1/eV", **FEATURE_UNITS}
    return {name: known.get(name, "?") for name in names}


@dataclass(frozen=True)
class SavedModel:
    """A fitted model of the Li diffusivity and the columns (with units) it reads.

    ``estimator`` is a :class:`~amorph.regression.sisso.SissoModel` of ln D (``kind`` "sisso") or
    a scikit-learn-style regressor of D in cm²/s whose columns are ``inputs`` in order (``kind``
    "rf" or "xgb"); the spread of ``members``' predictions is its uncertainty.
    """

    kind: str
    label: str
    inputs: tuple[str, ...]
    units: dict[str, str]
    output: str
    estimator: Any
    members: tuple = ()

    def check_units(self) -> None:
        """Raise :class:`InputError` where an input's unit is not the one amorph computes now."""
        now = column_units(self.inputs)
        for name in self.inputs:
            if "?" not in (now[name], self.units[name]) and now[name] != self.units[name]:
                raise InputError(
                    f"{self.label} reads {name} in {self.units[name] or 'no unit'}, but amorph "
                    f"computes it in {now[name] or 'no unit'}"
                )

    def predict(
        self, temperature: np.ndarray, features: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """D (cm²/s) and its uncertainty (None for SISSO) at ``temperature`` (K)."""
        temperature = np.asarray(temperature, dtype=float)
        columns = {TEMPERATURE_COLUMN: temperature, INVERSE_KT: 1.0 / (K_B_EV * temperature)}
        columns |= features
        missing = [name for name in self.inputs if name not in columns]
        if missing:
            raise InputError(
                f"{self.label} needs the column(s) {', '.join(missing)}, which the input lacks"
            )
        if self.kind == "sisso":
            return np.exp(self.estimator.predict(columns)), None
        x = np.column_stack([columns[name] for name in self.inputs])
        return self.estimator.predict(x), spread(list(self.members), x)


def _sisso(model: SissoModel, label: str) -> SavedModel:
    inputs = model.primaries
    return SavedModel("sisso", label, inputs, column_units(inputs), LN_D_UNIT, model)


@cache
def published_sisso() -> SavedModel:
    """The published 4-term SISSO model (module docstring)."""
    model = SissoModel(
        tuple(map(Descriptor, PUBLISHED_SISSO_TERMS)),
        np.array(list(PUBLISHED_SISSO_TERMS.values())),
        PUBLISHED_SISSO_INTERCEPT,
        PUBLISHED_SISSO_RMSE,
    )
    return _sisso(model, "the published 4-term SISSO model (Zheng et al. 2024)")


def ensemble_model(fit: EnsembleFit, inputs: tuple[str, ...], source: str) -> SavedModel:
    """A fitted random forest or XGBoost model of ``amorph train`` as a :class:`SavedModel`."""
    label = f"{MODEL_NAMES[fit.kind]} trained on {source}"
    return SavedModel(
        fit.kind, label, inputs, column_units(inputs), D_UNIT, fit.model, tuple(fit.members)
    )


def sisso_model(model: SissoModel, source: str) -> SavedModel:
    """A fitted SISSO model of ``amorph train`` as a :class:`SavedModel`."""
    return _sisso(model, f"SISSO {len(model.descriptors)}-term model trained on {source}")


def save_model(model: SavedModel, path: str | Path) -> Path:
    """Write ``model`` to ``path`` (atomically)."""
    document = {"format": FORMAT, "version": FORMAT_VERSION, "amorph": __version__, "model": model}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(document, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)


def load_model(path: str | Path) -> SavedModel:
    """The model :func:`save_model` wrote to ``path``; :class:`InputError` for anything else."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            document = pickle.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, pickle.UnpicklingError, EOFError, ImportError, AttributeError) as exc:
        raise InputError(f"{path}: not a model saved by amorph train ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{path}: not a model saved by amorph train")
    if document.get("version") != FORMAT_VERSION:
        raise InputError(f"{path}: model format {document.get('version')} is not supported")
    return document["model"]


def _column(rows: Sequence[Mapping], name: str) -> np.ndarray:
    values = np.full(len(rows), np.nan)
    for index, row in enumerate(rows):
        value = row.get(name)
        if isinstance(value, str):
            raise InputError(f"{row['source']}: {name} is not a number ({value!r})")
        if value is not None:
            values[index] = value
    return values


def _has_li(row: Mapping) -> bool:
    from pymatgen.core import Composition

    try:
        return Composition(row["formula"])["Li"] > 0
    except (ValueError, KeyError) as exc:
        raise InputError(f"{row['source']}: not a chemical formula ({exc})") from None


def predict_rows(
    model: SavedModel, rows: Sequence[Mapping], temperatures: Sequence[float] = ()
) -> list[dict[str, Any]]:
    """Predictions for feature ``rows`` (dicts with ``source``, ``formula``, ``temperature``,
    ``D_cm2_s`` and feature columns, as :mod:`amorph.descriptors.table` makes them).

    Each row is predicted at every one of ``temperatures`` (K), else at its own temperature, beside
    its own ``D_cm2_s`` (the simulated D). Returns dicts with ``source``, ``formula``,
    ``temperature``, ``D_cm2_s`` (predicted), ``D_sigma_cm2_s`` (None for SISSO) and
    ``D_simulated_cm2_s`` (None where unknown). Raises :class:`InputError` for a row without Li or
    without a temperature, or a model input no row has.
    """
    model.check_units()
    cases = []
    for row in rows:
        if not _has_li(row):
            raise InputError(
                f"{row['source']}: {row['formula']} has no Li, so no Li diffusivity to predict"
            )
        own = row.get("temperature")
        if not temperatures and not (isinstance(own, int | float) and own > 0):
            raise InputError(f"{row['source']}: no temperature; give --temperature")
        for temperature in temperatures or [own]:
            simulated = None if temperatures else row.get("D_cm2_s")
            cases.append((row, float(temperature), simulated))
    present = {name for row in rows for name in row}
    features = {
        name: _column([case[0] for case in cases], name)
        for name in model.inputs
        if name in present and name not in (TEMPERATURE_COLUMN, INVERSE_KT)
    }
    predicted, sigma = model.predict(np.array([case[1] for case in cases]), features)
    return [
        {
            "source": row["source"],
            "formula": row["formula"],
            "temperature": temperature,
            "D_cm2_s": float(predicted[k]),
            "D_sigma_cm2_s": None if sigma is None else float(sigma[k]),
            "D_simulated_cm2_s": simulated if isinstance(simulated, int | float) else None,
        }
        for k, (row, temperature, simulated) in enumerate(cases)
    ]
