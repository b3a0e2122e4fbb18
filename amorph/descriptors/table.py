"""Feature tables: from store results, structure files and trajectories to ``amorph train``'s CSV.

Inputs
------
* results in the store (:class:`~amorph.results.reader.StageEntry`): one row per composition and
  temperature, with its Li diffusivity, features of the last production frame or, with
  ``frames > 0``, averaged over that many frames of the production trajectory; results flagged
  ``converged: false`` are skipped unless ``include_unconverged``;
* a structure file that pymatgen reads (CIF, POSCAR/CONTCAR, pymatgen JSON, ...): one row, whose
  temperature is the ``temperature`` argument (else empty) and whose diffusivity is empty;
* an amorph trajectory (``.npz``): one row with the features averaged over ``frames`` frames.

Output columns: ``formula``, ``temperature`` (K), ``D_cm2_s`` (Li tracer diffusivity, cm²/s), then
:func:`amorph.descriptors.feature_names`; missing values are empty cells. Elements whose elemental
data are not the published ones (:func:`~amorph.elements.fallback_elements`) are named
in one logged warning.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pymatgen.core import Composition, Structure

from amorph.descriptors.features import compute_features, feature_names, trajectory_features
from amorph.elements import fallback_elements
from amorph.errors import AmorphError, InputError
from amorph.trajectory import Trajectory

if TYPE_CHECKING:
    from amorph.results.reader import StageEntry

logger = logging.getLogger(__name__)

ID_COLUMNS = ("formula", "temperature", "D_cm2_s")
SPECIES = "Li"

Row = dict[str, str | float | None]


def _read_structure(path: Path) -> Structure:
    try:
        return Structure.from_file(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (ValueError, KeyError, IndexError, OSError) as exc:  # pymatgen's parse errors
        raise InputError(
            f"{path}: not a readable structure file ({type(exc).__name__}: {exc})"
        ) from None


def _features(path: Path, frames: int, extended: bool, jobs: int) -> tuple[str, dict[str, float]]:
    """The formula and features of a structure file, or averaged over frames of a trajectory."""
    if path.suffix == ".npz":
        trajectory = Trajectory.load(path)
        features = trajectory_features(trajectory, max(frames, 1), extended, jobs)
        return trajectory.structure().composition.reduced_formula, features
    structure = _read_structure(path)
    return structure.composition.reduced_formula, compute_features(structure, extended)


def stage_row(stage: StageEntry, frames: int = 0, extended: bool = False, jobs: int = 1) -> Row:
    """One table row from a stage in the store (see the module docstring)."""
    doc = stage.doc
    if frames > 0 and not stage.has_trajectory:
        logger.warning("%s: no trajectory, features of the last frame", stage.source)
    if frames > 0 and stage.has_trajectory:
        features = trajectory_features(stage.trajectory(), frames, extended, jobs)
    else:
        features = compute_features(doc.structure, extended)
    li = doc.diffusivity.get(SPECIES)
    return {
        "source": stage.source,
        "formula": doc.formula,
        "temperature": doc.temperature_K,
        "D_cm2_s": None if li is None or li.diffusive is False else li.D_cm2_s,
        **features,
    }


def file_row(
    path: Path,
    frames: int = 0,
    temperature: float | None = None,
    extended: bool = False,
    jobs: int = 1,
) -> Row:
    """One table row from a structure file or an amorph trajectory (``.npz``, at least its last
    frame)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    formula, features = _features(path, frames, extended, jobs)
    return {
        "source": str(path),
        "formula": formula,
        "temperature": temperature,
        "D_cm2_s": None,
        **features,
    }


def features_table(
    stages: Iterable[StageEntry] = (),
    paths: Iterable[str | Path] = (),
    *,
    frames: int = 0,
    temperature: float | None = None,
    include_unconverged: bool = False,
    extended: bool = False,
    jobs: int = 1,
) -> list[Row]:
    """Rows (dicts keyed by :func:`table_columns`, plus ``source``, a label for messages) for
    stages of the store, then files; ``jobs`` processes share a trajectory's frames."""
    rows = []
    for stage in stages:
        if not include_unconverged and not stage.doc.converged:
            logger.warning("%s: skipped, its volume did not converge", stage.source)
            continue
        logger.info("featurising %s", stage.source)
        rows.append(_guarded(stage.source, stage_row, stage, frames, extended, jobs))
    rows.extend(
        _guarded(path, file_row, path, frames, temperature, extended, jobs)
        for path in map(Path, paths)
    )
    fallback = fallback_elements(
        el.symbol for row in rows for el in Composition(row["formula"]).elements
    )
    if fallback:
        logger.warning(
            "elemental data for %s are not in the published table: bulk and shear moduli from "
            "pymatgen, cohesive energies from Kittel (NaN where these have none)",
            ", ".join(fallback),
        )
    return rows


def _guarded(source, function, *args) -> Row:
    try:
        return function(*args)
    except AmorphError:
        raise
    except (ValueError, KeyError) as exc:  # e.g. an element pymatgen has no data for
        raise InputError(f"{source}: cannot compute features ({exc})") from None


def table_columns(extended: bool = False) -> tuple[str, ...]:
    """The columns of a feature table."""
    return (*ID_COLUMNS, *feature_names(extended))


def _cell(value: str | float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else f"{value:.10g}"


def write_table(rows: Iterable[Row], handle: IO[str], extended: bool = False) -> int:
    """Write ``rows`` as CSV with :func:`table_columns`; returns the number of rows written."""
    columns = table_columns(extended)
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
        count += 1
    return count


def _value(cell: str) -> str | float | None:
    text = cell.strip()
    try:
        return float(text) if text else None
    except ValueError:
        return text


def read_table_rows(path: str | Path) -> list[Row]:
    """The rows of a CSV table with a ``formula`` column (e.g. one :func:`write_table` wrote):
    empty cells None, numbers floats, other cells strings; ``source`` is ``<path> row <n>``."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not records or "formula" not in records[0]:
        raise InputError(f"{path}: not a feature table (no 'formula' column or no rows)")
    return [
        {
            **{
                name: _value(cell or "")
                for name, cell in record.items()
                if name not in (None, "formula")  # None: cells beyond the header
            },
            "formula": record["formula"].strip(),
            "source": f"{path} row {number}",
        }
        for number, record in enumerate(records, start=2)
    ]
