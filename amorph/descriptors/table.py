"""Feature tables: from structure files, trajectories and result directories to the CSV of ``amorph train``.

Inputs
------
* a structure file that pymatgen reads (CIF, POSCAR/CONTCAR, pymatgen JSON, ...): one row, whose
  temperature is the ``temperature`` argument (else empty) and whose diffusivity is empty;
* an amorph trajectory (``.npz``): one row with the features averaged over ``frames`` frames;
* a result directory, or any directory above result directories: every ``summary.json`` below it is
  one row. The layout written by the amorph pipeline is::

      <root>/<formula>/<T>K/summary.json     formula, temperature_K, converged, trajectory,
                                             diffusivity: {"Li": {"D_cm2_s": ..., ...}} (optional)
      <root>/<formula>/<T>K/structure.json   pymatgen Structure (else structure.cif, else POSCAR)
      <root>/<formula>/<T>K/trajectory.npz   amorph Trajectory

  Only ``summary.json`` and one structure file are required. ``formula`` defaults to the
  structure's reduced formula, ``temperature_K`` and ``diffusivity`` may be missing (empty cells).
  With ``frames > 0`` and a readable trajectory (``summary["trajectory"]``, resolved against the
  result directory, else ``trajectory.npz`` beside the summary) the features are averaged over that
  many frames instead of being taken from the structure file. Results marked ``"converged": false``
  are skipped unless ``include_unconverged``.

Output columns: ``formula``, ``temperature`` (K), ``D_cm2_s`` (Li tracer diffusivity, cm²/s), then
:data:`amorph.descriptors.FEATURE_NAMES`; missing values are empty cells.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from pymatgen.core import Structure

from amorph.descriptors import FEATURE_NAMES, compute_features, trajectory_features
from amorph.errors import AmorphError, InputError
from amorph.trajectory import Trajectory

log = logging.getLogger(__name__)

ID_COLUMNS = ("formula", "temperature", "D_cm2_s")
TABLE_COLUMNS = (*ID_COLUMNS, *FEATURE_NAMES)
STRUCTURE_FILES = ("structure.json", "structure.cif", "POSCAR")
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


def _trajectory_of(directory: Path, summary: dict) -> Path | None:
    named = summary.get("trajectory")
    candidates = [directory / "trajectory.npz"]
    if named:
        candidates[:0] = [
            Path(named) if Path(named).is_absolute() else directory / named,
            directory / Path(named).name,
        ]
    return next((path for path in candidates if path.is_file()), None)


def _diffusivity(summary: dict) -> float | None:
    entry = (summary.get("diffusivity") or {}).get(SPECIES) or {}
    value = entry.get("D_cm2_s")
    return None if value is None else float(value)


def result_row(summary_path: Path, frames: int = 0, temperature: float | None = None) -> Row:
    """One table row from a result directory's ``summary.json`` (see the module docstring).

    ``temperature`` (K) stands in where the summary has no ``temperature_K``.
    """
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{summary_path}: not a readable summary ({exc})") from None
    directory = summary_path.parent
    structure_path = next(
        (directory / name for name in STRUCTURE_FILES if (directory / name).is_file()), None
    )
    trajectory_path = _trajectory_of(directory, summary) if frames > 0 else None
    if frames > 0 and trajectory_path is None:
        log.warning("%s: no trajectory, features taken from the structure file", directory)
    if structure_path is None and trajectory_path is None:
        raise InputError(f"{directory}: no {', '.join(STRUCTURE_FILES)} beside summary.json")
    formula, features = _features(structure_path, trajectory_path, frames)
    stated_temperature = summary.get("temperature_K")
    return {
        "formula": summary.get("formula") or formula,
        "temperature": temperature if stated_temperature is None else stated_temperature,
        "D_cm2_s": _diffusivity(summary),
        **features,
    }


def _rows_for(
    path: Path, frames: int, temperature: float | None, include_unconverged: bool
) -> Iterator[Row]:
    if path.is_dir():
        summaries = sorted(path.rglob("summary.json"))
        if not summaries:
            raise InputError(f"{path}: no summary.json found below this directory")
    elif path.name == "summary.json":
        summaries = [path]
    else:
        is_trajectory = path.suffix == ".npz"
        formula, features = _features(
            path, path if is_trajectory else None, max(frames, 1) if is_trajectory else 0
        )
        yield {"formula": formula, "temperature": temperature, "D_cm2_s": None, **features}
        return
    for summary_path in summaries:
        if not include_unconverged and _is_unconverged(summary_path):
            log.warning("%s: skipped, the run did not converge", summary_path.parent)
            continue
        log.info("featurising %s", summary_path.parent)
        yield result_row(summary_path, frames, temperature)


def _is_unconverged(summary_path: Path) -> bool:
    try:
        return json.loads(summary_path.read_text()).get("converged") is False
    except (OSError, json.JSONDecodeError):
        return False  # result_row reports the unreadable file


def features_table(
    paths: Iterable[str | Path],
    *,
    frames: int = 0,
    temperature: float | None = None,
    include_unconverged: bool = False,
) -> list[Row]:
    """Rows (dicts keyed by :data:`TABLE_COLUMNS`) for structure files, trajectories and result trees."""
    rows = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        try:
            rows.extend(_rows_for(path, frames, temperature, include_unconverged))
        except AmorphError:
            raise
        except (ValueError, KeyError) as exc:  # e.g. an element pymatgen has no data for
            raise InputError(f"{path}: cannot compute features ({exc})") from None
    return rows


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
