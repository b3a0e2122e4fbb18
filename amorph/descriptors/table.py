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
:data:`amorph.descriptors.FEATURE_NAMES`; missing values are empty cells.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pymatgen.core import Structure

from amorph.descriptors import FEATURE_NAMES, compute_features, trajectory_features
from amorph.errors import AmorphError, InputError
from amorph.trajectory import Trajectory

if TYPE_CHECKING:
    from amorph.results.reader import StageEntry

logger = logging.getLogger(__name__)

ID_COLUMNS = ("formula", "temperature", "D_cm2_s")
TABLE_COLUMNS = (*ID_COLUMNS, *FEATURE_NAMES)
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


def _features(
    structure_path: Path, trajectory_path: Path | None, frames: int
) -> tuple[str, dict[str, float]]:
    """The formula and features of a structure file, or averaged over frames of a trajectory."""
    if trajectory_path is not None and frames > 0:
        trajectory = Trajectory.load(trajectory_path)
        return trajectory.structure().composition.reduced_formula, trajectory_features(
            trajectory, frames
        )
    structure = _read_structure(structure_path)
    return structure.composition.reduced_formula, compute_features(structure)


def stage_row(stage: StageEntry, frames: int = 0) -> Row:
    """One table row from a stage in the store (see the module docstring)."""
    doc = stage.doc
    if frames > 0 and not stage.has_trajectory:
        logger.warning("%s: no trajectory, features of the last frame", stage.source)
    if frames > 0 and stage.has_trajectory:
        features = trajectory_features(stage.trajectory(), frames)
    else:
        features = compute_features(doc.structure)
    li = doc.diffusivity.get(SPECIES)
    return {
        "formula": doc.formula,
        "temperature": doc.temperature_K,
        "D_cm2_s": None if li is None or li.diffusive is False else li.D_cm2_s,
        **features,
    }


def file_row(path: Path, frames: int = 0, temperature: float | None = None) -> Row:
    """One table row from a structure file or an amorph trajectory (``.npz``)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    is_trajectory = path.suffix == ".npz"
    formula, features = _features(
        path, path if is_trajectory else None, max(frames, 1) if is_trajectory else 0
    )
    return {"formula": formula, "temperature": temperature, "D_cm2_s": None, **features}


def features_table(
    stages: Iterable[StageEntry] = (),
    paths: Iterable[str | Path] = (),
    *,
    frames: int = 0,
    temperature: float | None = None,
    include_unconverged: bool = False,
) -> list[Row]:
    """Rows (dicts keyed by :data:`TABLE_COLUMNS`) for stages of the store, then files."""
    rows = []
    for stage in stages:
        if not include_unconverged and not stage.doc.converged:
            logger.warning("%s: skipped, its volume did not converge", stage.source)
            continue
        logger.info("featurising %s", stage.source)
        rows.append(_guarded(stage.source, stage_row, stage, frames))
    for path in map(Path, paths):
        rows.append(_guarded(path, file_row, path, frames, temperature))
    return rows


def _guarded(source, function, *args) -> Row:
    try:
        return function(*args)
    except AmorphError:
        raise
    except (ValueError, KeyError) as exc:  # e.g. an element pymatgen has no data for
        raise InputError(f"{source}: cannot compute features ({exc})") from None


def _cell(value: str | float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else f"{value:.10g}"


def write_table(rows: Iterable[Row], handle: IO[str]) -> int:
    """Write ``rows`` as CSV with :data:`TABLE_COLUMNS`; returns the number of rows written."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in TABLE_COLUMNS])
        count += 1
    return count
