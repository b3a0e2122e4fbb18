"""The database: per-composition results read back from a jobflow JobStore, as tables.

Each finished melt-quench flow leaves one ``collect`` document whose output is the list of its
temperature summaries (see :mod:`amorph.results.summary`); the newest one per formula is the database entry.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from jobflow import JobStore

from amorph.errors import InputError

COLLECT_JOB = "collect"
TABLE_COLUMNS = (
    "formula",
    "temperature_K",
    "n_atoms",
    "density_g_cm3",
    "volume_per_atom_A3",
    "pressure_GPa",
    "converged",
    "engine",
    "pressure_convention",
)


def compositions(store: JobStore) -> dict[str, list[dict[str, Any]]]:
    """The newest finished result of every composition: formula → temperature summaries, hottest first."""
    store.connect()
    newest: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for doc in store.query({"name": COLLECT_JOB}, properties=["output", "completed_at"], load=True):
        summaries = doc["output"]
        if not summaries:
            continue
        formula = summaries[0]["formula"]
        completed = str(doc.get("completed_at") or "")
        if formula not in newest or completed > newest[formula][0]:
            newest[formula] = (completed, summaries)
    return {formula: newest[formula][1] for formula in sorted(newest)}


def rows(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One flat row per composition and temperature, with D per species and Ea where fitted."""
    table = []
    for summaries in results.values():
        for s in summaries:
            row = {key: s.get(key) for key in TABLE_COLUMNS}
            for species, d in (s.get("diffusivity") or {}).items():
                row[f"D_{species}_cm2_s"] = d["D_cm2_s"]
                row[f"D_{species}_sigma_cm2_s"] = d["D_sigma_cm2_s"]
            for species, fit in (s.get("arrhenius") or {}).items():
                row[f"Ea_{species}_eV"] = fit["Ea_eV"]
                row[f"Ea_{species}_sigma_eV"] = fit["Ea_sigma_eV"]
            row["trajectory"] = s.get("trajectory")
            table.append(row)
    return table


def select(results: dict[str, list[dict[str, Any]]], formula: str) -> list[dict[str, Any]]:
    """The summaries of one composition, by any way of writing its formula."""
    from amorph.structure.composition import parse_composition

    wanted = parse_composition(formula).reduced_formula
    if wanted not in results:
        known = ", ".join(results) or "none"
        raise InputError(f"no results for {wanted} in the store (it has: {known})")
    return results[wanted]


def export(table: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV (columns: the union of all rows' keys, in order of appearance) or JSON."""
    if fmt == "json":
        return json.dumps(table, indent=1)
    if fmt != "csv":
        raise InputError(f"unknown export format {fmt!r}: choose csv or json")
    columns = list(dict.fromkeys(key for row in table for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()
