"""One MPContribs contribution per composition and temperature, built from a stage in the store.

Identifier
    ``<reduced formula>-<T>K-<engine>``, e.g. ``Li3PO4-1500K-chgnet``: T rounded to kelvin as in
    the store, the engine name reduced to letters, digits, ``.`` and ``-``.
    Deterministic, so a re-run recognises what the server already has. ``formula`` is the reduced
    formula.

``data`` (keys are letters and digits; units are declared with ``init_columns`` before upload)
    ``T`` target temperature (K); ``density`` (g/cm³); ``Vatom`` volume per atom (Å³); ``atoms``
    atoms in the cell; ``P`` mean pressure of the production run (GPa); ``converged`` whether the
    zero-pressure volume check passed ("Yes"/"No"); ``D.<El>`` tracer diffusivity ± its 1-sigma
    error (cm²/s); ``Ea.<El>`` and ``D0.<El>`` Arrhenius activation energy (eV) and prefactor
    (cm²/s), each ± sigma, when the composition has two or more temperatures; ``md.engine``,
    ``md.model``, ``md.timestep`` (fs) and ``md.steps`` (production steps).

    D comes from the stage document (``diffusivity``; species whose MSD was not diffusive are left
    out), else it is fitted here from the trajectory with :func:`amorph.analysis.diffusivities`. Ea
    and D0 are the pipeline's (the composition document's ``arrhenius``: the fit over the quench
    temperatures) when it recorded them, else fitted here over all temperatures of the composition
    and engine (:func:`amorph.analysis.arrhenius_fit`); every temperature of a composition carries
    the same values.

Structures, tables, attachment
    The final structure; tables ``RDF`` (partial g(r) against r in Å, every pair) and ``MSD`` (mean
    squared displacement per species in Å² against time in ps, at most 200 rows); the attachment
    ``trajectory.json.gz``: JSON with ``numbers``, ``time_fs``, ``cells`` and unwrapped
    ``positions`` (Å, 3 decimals) of every ``stride``-th frame, the stride chosen so that the gzip
    fills at most 95 % of the 2.4 MiB limit (or set by a number of frames asked for).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from pandas import DataFrame
from pymatgen.core import Composition, Structure

from amorph.analysis import diffusivities, radial_distribution
from amorph.analysis.arrhenius import fits_by_species, points_by_species
from amorph.errors import AmorphError
from amorph.publish.rules import MAX_ATTACHMENT_BYTES, contribution_problems

if TYPE_CHECKING:
    from amorph.results.reader import StageEntry
from amorph.trajectory import Trajectory

ATTACHMENT_NAME = "trajectory.json.gz"
ATTACHMENT_FORMAT = "amorph-trajectory-sample/1"
ATTACHMENT_TARGET_BYTES = int(0.95 * MAX_ATTACHMENT_BYTES)
POSITION_DECIMALS = 3
RDF_R_MAX_A = 8.0
RDF_BIN_A = 0.05
RDF_MAX_FRAMES = 50
TABLE_MAX_ROWS = 200
PROBE_FRAMES = 64
MAX_STRIDE_TRIES = 8

logger = logging.getLogger(__name__)


@dataclass
class Contribution:
    """One contribution before upload; ``attachments`` are ``{"name", "mime", "content"}`` dicts."""

    identifier: str
    formula: str
    temperature_K: float
    diffusion: dict[str, tuple[float, float]]  # species -> (D, sigma) in cm²/s
    data: dict
    structures: list[Structure] = field(default_factory=list)
    tables: list[DataFrame] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)


@dataclass
class Candidate:
    """A results entry on its way to the server: its contribution, or why it cannot go."""

    identifier: str
    source: str
    contribution: Contribution | None
    problems: list[str]

    @property
    def valid(self) -> bool:
        """Whether it can go (no problems)."""
        return not self.problems


def identifier(summary: dict) -> str:
    """``<reduced formula>-<T>K-<engine>`` of a results summary (see the module docstring)."""
    formula, temperature, engine = _identity(summary)
    return f"{formula}-{temperature:.0f}K-{engine}"


def _identity(summary: dict) -> tuple[str, float, str]:
    engine = re.sub(r"[^A-Za-z0-9.]+", "-", str(summary["engine"])).strip("-.")
    return Composition(summary["formula"]).reduced_formula, float(summary["temperature_K"]), engine


def build_groups(
    entries: Sequence[StageEntry], attachment_frames: int | None = None, skip: Collection[str] = ()
) -> Iterator[list[Candidate]]:
    """Validated candidates, one list per composition and engine, without identifiers in ``skip``.

    Entries in ``skip`` (already published) still enter their composition's Arrhenius fit. When one
    candidate of a composition is invalid the others are withheld too, so that a composition is
    published whole or not at all.
    """
    groups = defaultdict(list)
    for entry in entries:
        try:
            formula, _, engine = _identity(entry.summary)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"the result has no usable formula, temperature_K or engine ({exc})"
            yield [Candidate(entry.source, entry.source, None, [reason])]
            continue
        groups[formula, engine].append((identifier(entry.summary), entry))
    counts = Counter(key for members in groups.values() for key, _ in members)
    for members in groups.values():
        if any(key not in skip for key, _ in members):
            yield _group(members, attachment_frames, skip, counts)


def _group(
    members: list[tuple[str, StageEntry]],
    attachment_frames: int | None,
    skip: Collection[str],
    counts: Counter,
) -> list[Candidate]:
    built, points = [], []
    for key, entry in members:
        if key in skip:
            points += _published_point(entry)
            continue
        result = _built(key, entry, attachment_frames)
        if isinstance(result, Contribution):
            points.append((result.temperature_K, result.diffusion))
        built.append((key, entry, result))
    fits = _pipeline_arrhenius(members) or _arrhenius(points)
    group = []
    for key, entry, result in built:
        problems = [result] if isinstance(result, str) else []
        if counts[key] > 1:
            problems.append(f"identifier {key} is shared by {counts[key]} results folders")
        if isinstance(result, Contribution):
            _add_arrhenius(result, fits)
            problems += contribution_problems(result)
        group.append(Candidate(key, entry.source, None if problems else result, problems))
    invalid = [c.identifier for c in group if not c.valid]
    for candidate in group:
        if invalid and candidate.valid:
            candidate.problems.append(
                f"withheld: {', '.join(invalid)} of the same composition is invalid"
            )
            candidate.contribution = None
    return group


def _published_point(entry: StageEntry) -> list[tuple[float, dict]]:
    """``[(T, diffusion)]`` of an entry already on the server, for the Arrhenius fit."""
    try:
        return [(float(entry.summary["temperature_K"]), entry_diffusion(entry))]
    except (AmorphError, KeyError, OSError, ValueError) as exc:
        logger.warning("%s: left out of the Arrhenius fit (%s)", entry.source, exc)
        return []


def _built(key: str, entry: StageEntry, attachment_frames: int | None) -> Contribution | str:
    """The contribution of ``entry`` (without Ea and D0), or why it could not be built."""
    try:
        return build_contribution(key, entry, attachment_frames)
    except KeyError as exc:
        return f"the result lacks {exc}"
    except (AmorphError, OSError, ValueError) as exc:
        return f"cannot build: {exc}"


def entry_diffusion(
    entry: StageEntry, measured: dict | None = None
) -> dict[str, tuple[float, float]]:
    """(D, sigma) in cm²/s per species: the pipeline's if the result has them (diffusive species
    only), else those of ``measured`` (:func:`amorph.analysis.diffusivities` of the trajectory; run
    if not given)."""
    reported = entry.summary.get("diffusivity")
    if reported:
        return {
            s: (float(d["D_cm2_s"]), float(d["D_sigma_cm2_s"]))
            for s, d in reported.items()
            if d.get("diffusive") is not False
        }
    if measured is None:
        measured = diffusivities(entry.trajectory())
    return {s: (d.D_cm2_s, d.D_sigma_cm2_s) for s, d in measured.items()}


def build_contribution(
    key: str, entry: StageEntry, attachment_frames: int | None = None
) -> Contribution:
    """Data, final structure, RDF and MSD tables and the trajectory attachment of one entry."""
    summary = entry.summary
    traj = entry.trajectory()
    measured = diffusivities(traj)
    diffusion = entry_diffusion(entry, measured)
    structure = entry.structure()
    structure.name = "final"
    stride = math.ceil(traj.n_frames / RDF_MAX_FRAMES)
    rdf = radial_distribution(traj, RDF_R_MAX_A, RDF_BIN_A, stride=stride, progress=False)
    rdf_table = _table(
        "RDF",
        "partial radial distribution functions",
        {"index": "r [Å]", "value": "g(r)", "variable": "pair"},
        rdf.r,
        {f"{a}-{b}": g for (a, b), g in rdf.partials.items()},
    )
    lag_ps = next(iter(measured.values())).msd.lag_fs / 1000
    rows = np.unique(np.linspace(0, len(lag_ps) - 1, TABLE_MAX_ROWS).round().astype(int))
    msd_table = _table(
        "MSD",
        "mean squared displacement",
        {"index": "t [ps]", "value": "MSD [Å²]", "variable": "species"},
        lag_ps[rows],
        {s: d.msd.msd_A2[rows] for s, d in measured.items()},
    )
    return Contribution(
        identifier=key,
        formula=Composition(summary["formula"]).reduced_formula,
        temperature_K=float(summary["temperature_K"]),
        diffusion=diffusion,
        data=_data(summary, diffusion),
        structures=[structure],
        tables=[rdf_table, msd_table],
        attachments=[trajectory_attachment(traj, attachment_frames)],
    )


def quantity(value: float, unit: str, error: float | None = None) -> str:
    """``"<value> <unit>"`` or ``"<value>±<error> <unit>"``, the server's quantity strings."""
    return f"{value:.6g}{'' if error is None else f'±{error:.2g}'} {unit}"


def _data(summary: dict, diffusion: dict[str, tuple[float, float]]) -> dict:
    md = {
        "engine": str(summary["engine"]),
        "model": summary.get("engine_model"),
        "timestep": quantity(summary["time_step_fs"], "fs"),
        "steps": int(summary["production_steps"]),
    }
    return {
        "T": quantity(summary["temperature_K"], "K"),
        "density": quantity(summary["density_g_cm3"], "g/cm³"),
        "Vatom": quantity(summary["volume_per_atom_A3"], "Å³"),
        "atoms": int(summary["n_atoms"]),
        "P": quantity(summary["pressure_GPa"], "GPa"),
        "converged": "Yes" if summary["converged"] else "No",
        "D": {s: quantity(d, "cm²/s", sigma) for s, (d, sigma) in diffusion.items()},
        "md": {k: v for k, v in md.items() if v is not None},
    }


def _pipeline_arrhenius(members: list[tuple[str, StageEntry]]) -> dict:
    """The Arrhenius fits the pipeline recorded for this composition, if any."""
    return next((e.summary["arrhenius"] for _, e in members if e.summary.get("arrhenius")), {})


def _arrhenius(points: list[tuple[float, dict]]) -> dict:
    """Arrhenius fit per species over ``(T, {species: (D, sigma_D)})`` of one composition."""
    rows = ((species, t, *d) for t, diffusion in points for species, d in diffusion.items())
    return {
        species: fit.as_dict() for species, fit in fits_by_species(points_by_species(rows)).items()
    }


def _add_arrhenius(contribution: Contribution, fits: dict) -> None:
    """``Ea`` and ``D0`` per species from fits given as :meth:`ArrheniusFit.as_dict` dicts."""
    if fits:
        contribution.data["Ea"] = {
            s: quantity(f["Ea_eV"], "eV", f["Ea_sigma_eV"]) for s, f in fits.items()
        }
        contribution.data["D0"] = {
            s: quantity(f["D0_cm2_s"], "cm²/s", f["D0_sigma_cm2_s"]) for s, f in fits.items()
        }


def _table(
    name: str, title: str, labels: dict[str, str], index: np.ndarray, columns: dict[str, np.ndarray]
) -> DataFrame:
    """A table of numbers written with 6 significant digits (the client sends cells as text);
    ``labels`` name the ``index`` (x axis), the ``value`` (y axis) and the ``variable`` (legend)."""
    table = DataFrame(
        {k: [f"{v:.6g}" for v in values] for k, values in columns.items()},
        index=[f"{v:.6g}" for v in index],
    )
    table.index.name = labels["index"]
    table.attrs = {"name": name, "title": title, "labels": labels}
    return table


def trajectory_attachment(traj: Trajectory, frames: int | None = None) -> dict:
    """The trajectory as a gzipped JSON attachment: every frame if it fits, else every stride-th.

    The stride comes from the gzip size of a probe of at most :data:`PROBE_FRAMES` frames and is
    raised until the result fits. ``frames`` fixes the number of frames instead (the result may
    then exceed the server's limit, which validation reports).
    """
    if frames is not None:
        return _attachment(_sample_gzip(traj, math.ceil(traj.n_frames / max(frames, 1))))
    probe_stride = math.ceil(traj.n_frames / PROBE_FRAMES)
    bytes_per_frame = len(_sample_gzip(traj, probe_stride)) / math.ceil(
        traj.n_frames / probe_stride
    )
    stride = math.ceil(traj.n_frames * bytes_per_frame / ATTACHMENT_TARGET_BYTES)
    for _ in range(MAX_STRIDE_TRIES):
        content = _sample_gzip(traj, stride)
        if len(content) <= ATTACHMENT_TARGET_BYTES or stride >= traj.n_frames:
            break
        stride = min(
            traj.n_frames,
            max(stride + 1, math.ceil(stride * 1.02 * len(content) / ATTACHMENT_TARGET_BYTES)),
        )
    return _attachment(content)


def _sample_gzip(traj: Trajectory, stride: int) -> bytes:
    sample = traj.slice(step=stride)
    payload = {
        "format": ATTACHMENT_FORMAT,
        "stride": stride,
        "frames_in_run": traj.n_frames,
        "numbers": sample.numbers.tolist(),
        "time_fs": sample.time_fs.tolist(),
        "cells": np.round(sample.cells, 6).tolist(),
        "positions": np.round(sample.positions, POSITION_DECIMALS).tolist(),
    }
    return gzip.compress(
        json.dumps(payload, separators=(",", ":")).encode(), compresslevel=6, mtime=0
    )


def _attachment(content: bytes) -> dict:
    return {
        "name": ATTACHMENT_NAME,
        "mime": "application/gzip",
        "content": base64.b64encode(content).decode(),
    }
