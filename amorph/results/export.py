"""Exports of the store: flat tables (CSV, JSON) and result folders with files and plots.

Everything here is made from the documents read by :class:`~amorph.results.reader.Database`, so an
export can be redone from the store alone. Every file is written in a new staging folder and moved
into place, so nothing is written through a link planted among the folders (a link where a folder
belongs is refused, one at a file's place is replaced). Folder layout (each folder written
atomically)::

    <directory>/<formula>/<T>K/
        summary.json      the stage document (amorph.results.schemas.StageDoc) as JSON
        structure.cif, POSCAR, structure.json   the last production frame
        trajectory.npz    the production trajectory (amorph.trajectory.Trajectory)
        eos.json, eos.png the P(V) points and fit of the volume search
        rdf.png, msd.png  partial g(r) and MSDs (fit window marked)
    <directory>/<formula>/arrhenius.json, arrhenius.png   D(T) over the quench temperatures

With several engines for one formula, the folders are ``<formula>-<engine>``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from amorph.errors import InputError
from amorph.files import json_text, safe_directory, stage_folder, staging_dir
from amorph.results.reader import CompositionEntry, StageEntry

TABLE_COLUMNS = (
    "formula",
    "engine",
    "temperature_K",
    "n_atoms",
    "density_g_cm3",
    "volume_per_atom_A3",
    "pressure_GPa",
    "pressure_sem_GPa",
    "converged",
    "pressure_convention",
    "surrogate_disagreement",
)


def rows(compositions: list[CompositionEntry]) -> list[dict[str, Any]]:
    """One flat row per composition and temperature: the table columns, D per species (with σ
    and the diffusive flag), Ea per species, and the second opinion's volume shift."""
    table = []
    for composition in compositions:
        for stage in composition.stages:
            doc = stage.doc
            row = {key: getattr(doc, key) for key in TABLE_COLUMNS}
            for species, d in doc.diffusivity.items():
                row[f"D_{species}_cm2_s"] = d.D_cm2_s
                row[f"D_{species}_sigma_cm2_s"] = d.D_sigma_cm2_s
                row[f"diffusive_{species}"] = d.diffusive
            for species, fit in composition.doc.arrhenius.items():
                row[f"Ea_{species}_eV"] = fit.Ea_eV
                row[f"Ea_{species}_sigma_eV"] = fit.Ea_sigma_eV
            if doc.second_opinion is not None:
                row["second_opinion_engine"] = doc.second_opinion.engine
                row["second_opinion_volume_shift"] = doc.second_opinion.volume_shift
            table.append(row)
    return table


def format_rows(table: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV (columns: the union of all rows' keys, in order of appearance) or JSON."""
    if fmt == "json":
        return json_text(table)
    if fmt != "csv":
        raise InputError(f"unknown export format {fmt!r}: choose csv or json")
    columns = list(dict.fromkeys(key for row in table for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def write_folders(compositions: list[CompositionEntry], directory: str | Path) -> list[Path]:
    """Write the folders of ``compositions`` under ``directory`` (the folder the user named, made
    if missing); return the stage folders."""
    engines = Counter(c.formula for c in compositions)
    written = []
    for composition in compositions:
        name = composition.formula
        if engines[name] > 1:
            name = f"{name}-{composition.doc.engine.replace(':', '-').replace('/', '-')}"
        folder = safe_directory(Path(directory) / name, directory)
        for stage in composition.stages:
            # a link there is refused; the folder is written whole, in place, by the staging below
            target = stage_folder(directory, name, stage.doc.temperature_K, make=False)
            _write_atomically(target, lambda staging, stage=stage: _stage_files(stage, staging))
            written.append(target)
        _arrhenius_files(composition, folder)
    return written


def _stage_files(stage: StageEntry, folder: Path) -> None:
    from amorph.analysis.plots import plot_msd, plot_rdf
    from amorph.results.documents import rdf_from_document
    from amorph.volume.eos import EOSFit, EOSPoint, plot_eos

    doc = stage.doc
    title = f"{doc.formula} {doc.temperature_K:.0f} K"
    doc.structure.to(filename=str(folder / "structure.cif"))
    doc.structure.to(filename=str(folder / "POSCAR"), fmt="poscar")
    (folder / "structure.json").write_text(json_text(doc.structure.as_dict(), indent=None))
    (folder / "summary.json").write_text(json_text(stage.summary))
    (folder / "eos.json").write_text(json_text(doc.eos.model_dump(mode="json")))
    source = doc.trajectory.path
    if not doc.trajectory.in_data_store and source and Path(source).is_file():
        shutil.copyfile(source, folder / "trajectory.npz")  # a copy: damage to one is not to both
    else:
        stage.trajectory().save(folder / "trajectory.npz")
    points = [EOSPoint(trajectory_path="", **p.model_dump()) for p in doc.eos.points]
    plot_eos(
        points,
        EOSFit(**doc.eos.fit.model_dump()),
        doc.eos.zero_pressure_volume_A3,
        folder / "eos.png",
        title=title,
    )
    if doc.msd:
        plot_msd(
            {s: (c.lag_fs, c.msd_A2) for s, c in doc.msd.items()},
            doc.diffusivity,
            folder / "msd.png",
            title=title,
        )
    if doc.rdf is not None:
        plot_rdf(rdf_from_document(doc.rdf), folder / "rdf.png", title=title)


def _arrhenius_files(composition: CompositionEntry, folder: Path) -> None:
    from amorph.analysis.plots import plot_arrhenius
    from amorph.results.documents import arrhenius_fits

    if not composition.doc.arrhenius:
        return
    block = {s: fit.model_dump(mode="json") for s, fit in composition.doc.arrhenius.items()}
    fits, points = arrhenius_fits([stage.doc for stage in composition.stages])
    staging = _staging(folder, ".arrhenius.")
    try:
        (staging / "arrhenius.json").write_text(json_text(block))
        plot_arrhenius(fits, points, staging / "arrhenius.png")
        for path in staging.iterdir():
            os.replace(path, folder / path.name)  # a link there is replaced, its target untouched
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_atomically(target: Path, fill) -> None:
    """Fill a staging folder beside ``target``, then put it in place of ``target``; staging folders
    a killed writer left behind go first."""
    staging = _staging(target.parent, f".{target.name}.")
    try:
        fill(staging)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging(parent: Path, prefix: str) -> Path:
    """A new staging folder in ``parent``; those a killed writer left (``prefix*``) go first."""
    for leftover in parent.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return staging_dir(parent, prefix)
