"""Reading and validating a training table (CSV) for ``amorph train``.

A table has a ``formula`` column, a ``temperature`` column (K), a target diffusivity column (cm²/s,
default ``D_cm2_s``) and numeric feature columns: every other column, unless excluded. Empty cells
are missing values: rows with a missing target are left out (they cannot be learned from), missing
feature values are kept as NaN. Anything else that is not a number is an error naming its column.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amorph.errors import InputError

logger = logging.getLogger(__name__)

FORMULA_COLUMN = "formula"
TEMPERATURE_COLUMN = "temperature"
INVERSE_KT = "1/kT"
"""The SISSO input 1/(k_B T) in eV⁻¹, computed from the temperature."""
DEFAULT_TARGET = "D_cm2_s"
MIN_ROWS = 10
"""Fewest rows with a target: an 85/15 split with 5-fold cross-validation needs this many."""


@dataclass(frozen=True)
class Table:
    """A validated training table: one row per structure and temperature."""

    formulas: list[str]
    temperature: np.ndarray
    target: np.ndarray
    feature_names: tuple[str, ...]
    features: np.ndarray
    target_name: str = DEFAULT_TARGET

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.formulas)


def _numeric_column(name: str, cells: list[str], source: str) -> np.ndarray:
    values = np.empty(len(cells))
    for row, cell in enumerate(cells):
        text = cell.strip()
        try:
            values[row] = float(text) if text else math.nan
        except ValueError:
            raise InputError(
                f"{source}: column {name!r} is not numeric (row {row + 2}: {text!r}); "
                "remove it or name it with --exclude"
            ) from None
    return values


def read_table(
    path: str | Path,
    target: str = DEFAULT_TARGET,
    exclude: tuple[str, ...] = (),
    min_rows: int = MIN_ROWS,
) -> Table:
    """Read and validate a CSV training table; raises :class:`InputError` with one clear line."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            records = [record for record in reader if any(cell.strip() for cell in record)]
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not header:
        raise InputError(f"{path}: the table is empty")
    header = [name.strip() for name in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise InputError(f"{path}: duplicated column {duplicated[0]!r}")
    for required in (FORMULA_COLUMN, TEMPERATURE_COLUMN, target):
        if required not in header:
            raise InputError(f"{path}: missing column {required!r}")
    unknown = [name for name in exclude if name not in header]
    if unknown:
        raise InputError(f"{path}: cannot exclude missing column {unknown[0]!r}")
    short = [i + 2 for i, record in enumerate(records) if len(record) != len(header)]
    if short:
        raise InputError(f"{path}: row {short[0]} has a different number of cells than the header")
    cells = {name: [record[i] for record in records] for i, name in enumerate(header)}

    target_values = _numeric_column(target, cells[target], str(path))
    known = ~np.isnan(target_values)
    if not known.all():
        logger.info("%s: %d rows without %s left out", path, int((~known).sum()), target)
    if known.sum() < min_rows:
        raise InputError(
            f"{path}: too few rows with a {target!r} value "
            f"({int(known.sum())}; need at least {min_rows})"
        )
    temperature = _numeric_column(TEMPERATURE_COLUMN, cells[TEMPERATURE_COLUMN], str(path))[known]
    if np.isnan(temperature).any() or (temperature <= 0).any():
        raise InputError(
            f"{path}: column {TEMPERATURE_COLUMN!r} needs a positive value "
            "in every row with a target"
        )
    names = tuple(
        n for n in header if n not in (FORMULA_COLUMN, TEMPERATURE_COLUMN, target, *exclude)
    )
    if not names:
        raise InputError(
            f"{path}: no feature columns besides {FORMULA_COLUMN!r}, {TEMPERATURE_COLUMN!r} "
            f"and {target!r}"
        )
    features = np.column_stack([_numeric_column(n, cells[n], str(path))[known] for n in names])
    if not np.isfinite(target_values[known]).all() or np.isinf(features).any():
        raise InputError(f"{path}: infinite values are not allowed")
    formulas = [f.strip() for f, keep in zip(cells[FORMULA_COLUMN], known, strict=True) if keep]
    return Table(formulas, temperature, target_values[known], names, features, target)
