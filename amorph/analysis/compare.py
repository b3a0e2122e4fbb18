"""Comparison of amorph's stages with reference (AIMD) volumes, diffusivities and partial RDFs.

Reference files are CSV (comma-separated, one header line; an unnamed first column, a pandas
index, is ignored). :func:`read_reference` takes any number of them, of two kinds:

Multi-temperature table
    Columns ``formula``, ``temperature_K``, ``volume_per_atom_A3`` (Å³/atom), and optionally
    ``density_g_cm3`` and, per species X, ``D_X_cm2_s`` and its 1-sigma error ``D_X_sigma_cm2_s``
    (cm²/s). One row per composition and temperature; an empty optional cell means "not given".
    Without a density, the reference density is computed from the volume per atom and the
    formula's mass. Example::

        formula, temperature_K, volume_per_atom_A3, D_Li_cm2_s, D_Li_sigma_cm2_s
        Li2O, 1500, 9.0536, 2.4613e-04, 2.1e-05

RDF table
    A column ``r`` (Å, increasing) and one column per species pair ``A-B`` (either order) holding
    the partial g(r), normalised to 1 at long range for unlike pairs and to (N_A - 1) / N_A for like
    pairs (as amorph's, see :mod:`amorph.analysis.rdf`). The file name ``<label>_RDF_<formula>.csv``
    gives the label (e.g. ``DFT``) and the formula; otherwise a ``formula`` column is needed and the
    label is the file name. The temperature comes from an optional ``temperature_K`` column (one
    table per formula and temperature) or else from ``rdf_temperature_K`` (default 5000 K, as the
    RDF tables of Zheng et al. 2024, Fig. 6). Example::

        r, Li - Li, Li - O, O - O
        0.0, 0.0, 0.0, 0.0
        0.1, 0.0, 0.0, 0.0

:func:`compare` matches one composition's stages (plain dicts, see there) with the reference at the
same temperatures: volume and density errors, D ratios with errors and the ``diffusive`` flag, and
the R² of the partial RDFs per pair and pooled over pairs (:func:`amorph.analysis.rdf.pooled_r2`).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amorph.analysis.rdf import pooled_r2, resample
from amorph.analysis.report import format_or_dash
from amorph.constants import AMU_A3_TO_G_CM3
from amorph.errors import InputError

DEFAULT_RDF_TEMPERATURE_K = 5000.0
TEMPERATURE_TOLERANCE_K = 0.5  # temperatures closer than this are the same stage
POINT_COLUMNS = ("formula", "temperature_K", "volume_per_atom_A3", "density_g_cm3")
_D_COLUMN = re.compile(r"^D_([A-Z][a-z]?)_(sigma_)?cm2_s$")
_PAIR = re.compile(r"^([A-Z][a-z]?)-([A-Z][a-z]?)$")
_RDF_NAME = re.compile(r"^(?P<label>.+)_RDF_(?P<formula>[A-Za-z0-9.]+)$")
_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)")


@dataclass
class ReferencePoint:
    """One row of a multi-temperature table; ``D_cm2_s`` and ``D_sigma_cm2_s`` per species."""

    formula: str
    temperature_K: float
    volume_per_atom_A3: float
    density_g_cm3: float | None
    D_cm2_s: dict[str, float]
    D_sigma_cm2_s: dict[str, float]
    source: str


@dataclass
class ReferenceRDF:
    """Partial g(r) of one composition at one temperature; ``g`` keyed by pair ``"A-B"``."""

    label: str
    formula: str
    temperature_K: float
    r_A: np.ndarray
    g: dict[str, np.ndarray]
    source: str


@dataclass
class Reference:
    """Everything read from reference files."""

    points: list[ReferencePoint] = field(default_factory=list)
    rdfs: list[ReferenceRDF] = field(default_factory=list)

    @property
    def formulas(self) -> list[str]:
        """Formulas with reference data, in order of appearance."""
        return list(
            dict.fromkeys([p.formula for p in self.points] + [r.formula for r in self.rdfs])
        )


@dataclass
class DiffusivityComparison:
    """Our D of one species against the reference's; ``ratio`` is ours / reference."""

    species: str
    D_cm2_s: float | None
    D_sigma_cm2_s: float | None
    diffusive: bool | None
    reference_D_cm2_s: float
    reference_D_sigma_cm2_s: float | None
    ratio: float | None
    ratio_sigma: float | None


@dataclass
class RDFComparison:
    """R² of our partial RDFs against one reference table, on its grid within ``r_range_A``.

    ``g`` and ``reference_g`` (pair names as in the reference) hold the curves compared.
    """

    label: str
    source: str
    r2: dict[str, float]
    pooled_r2: float
    r_range_A: tuple[float, float]
    missing_pairs: list[str]
    r_A: np.ndarray = field(repr=False)
    g: dict[str, np.ndarray] = field(repr=False)
    reference_g: dict[str, np.ndarray] = field(repr=False)

    def as_dict(self) -> dict:
        """JSON-ready (no curves)."""
        return {
            "label": self.label,
            "source": self.source,
            "r2": self.r2,
            "pooled_r2": self.pooled_r2,
            "r_range_A": list(self.r_range_A),
            "missing_pairs": self.missing_pairs,
        }


@dataclass
class TemperatureComparison:
    """One temperature: our stage and the reference, whichever are present; ``absent`` says what
    is missing."""

    temperature_K: float
    volume_per_atom_A3: float | None = None
    reference_volume_per_atom_A3: float | None = None
    volume_error_pct: float | None = None
    density_g_cm3: float | None = None
    reference_density_g_cm3: float | None = None
    density_error_pct: float | None = None
    diffusivity: list[DiffusivityComparison] = field(default_factory=list)
    rdf: list[RDFComparison] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready, the diffusivity and RDF comparisons as dicts (no curves)."""
        row = {k: v for k, v in vars(self).items() if k not in ("diffusivity", "rdf")}
        return row | {
            "diffusivity": [vars(d) for d in self.diffusivity],
            "rdf": [r.as_dict() for r in self.rdf],
        }


@dataclass
class Comparison:
    """A composition's stages against the reference, one entry per temperature (ascending)."""

    formula: str
    temperatures: list[TemperatureComparison]

    def as_dict(self) -> dict:
        """JSON-ready (no curves)."""
        return {
            "formula": self.formula,
            "temperatures": [t.as_dict() for t in self.temperatures],
        }

    def table(self) -> str:
        """Printable tables: volume and density, diffusivities, RDF R²; '-' marks what is absent."""
        lines = [
            f"{self.formula}: ours vs reference",
            (
                f"  {'T (K)':>7}  {'V/atom (A3)':>11}  {'ref':>8}  {'err %':>6}  "
                f"{'rho (g/cm3)':>11}  {'ref':>7}  {'err %':>6}"
            ),
        ]
        lines.extend(
            f"  {t.temperature_K:>7g}  {format_or_dash(t.volume_per_atom_A3, '.3f'):>11}  "
            f"{format_or_dash(t.reference_volume_per_atom_A3, '.3f'):>8}  "
            f"{format_or_dash(t.volume_error_pct, '+.1f'):>6}  "
            f"{format_or_dash(t.density_g_cm3, '.3f'):>11}  "
            f"{format_or_dash(t.reference_density_g_cm3, '.3f'):>7}  "
            f"{format_or_dash(t.density_error_pct, '+.1f'):>6}"
            for t in self.temperatures
        )
        rows = [(t, d) for t in self.temperatures for d in t.diffusivity]
        if rows:
            lines.append(
                f"  {'T (K)':>7}  {'species':<7}  {'D ours (cm2/s)':>19}  {'D ref (cm2/s)':>19}  "
                f"{'ours/ref':>13}  diffusive"
            )
        for t, d in rows:
            lines.append(
                f"  {t.temperature_K:>7g}  {d.species:<7}  "
                f"{_pm(d.D_cm2_s, d.D_sigma_cm2_s, '.2e', '.1e'):>19}  "
                f"{_pm(d.reference_D_cm2_s, d.reference_D_sigma_cm2_s, '.2e', '.1e'):>19}  "
                f"{_pm(d.ratio, d.ratio_sigma, '.2f', '.2f'):>13}  "
                f"{'-' if d.diffusive is None else ('yes' if d.diffusive else 'NO')}"
            )
        for t in self.temperatures:
            for c in t.rdf:
                pairs = ", ".join(f"{p} {v:.3f}" for p, v in c.r2.items())
                missing = f"; not in ours: {', '.join(c.missing_pairs)}" if c.missing_pairs else ""
                lines.append(
                    f"  RDF {t.temperature_K:g} K vs {c.label}: pooled R² {c.pooled_r2:.3f} "
                    f"({c.r_range_A[0]:g}-{c.r_range_A[1]:g} Å); {pairs}{missing}"
                )
        lines += [
            f"  {t.temperature_K:g} K: {note}" for t in self.temperatures for note in t.absent
        ]
        return "\n".join(lines)


def read_reference(
    paths: str | Path | Iterable[str | Path],
    rdf_temperature_K: float = DEFAULT_RDF_TEMPERATURE_K,
) -> Reference:
    """Read reference CSV files (multi-temperature tables and RDF tables, see the module docstring).

    Parameters
    ----------
    paths
        One file or several.
    rdf_temperature_K
        Temperature of RDF tables without a ``temperature_K`` column.
    """
    if not rdf_temperature_K > 0:
        raise InputError(f"the RDF temperature must be positive, got {rdf_temperature_K}")
    reference = Reference()
    for path in [paths] if isinstance(paths, str | Path) else paths:
        table = _Table.read(Path(path))
        if "r" in table.header:
            reference.rdfs += _read_rdfs(table, rdf_temperature_K)
        elif "volume_per_atom_A3" in table.header or "formula" in table.header:
            reference.points += _read_points(table)
        else:
            raise InputError(
                f"{path}: neither a reference table (formula,temperature_K,volume_per_atom_A3,...) "
                "nor an RDF table (an r column and pair columns like Li-O)"
            )
    keys = [(formula_key(p.formula), round(p.temperature_K, 1)) for p in reference.points]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            point = reference.points[i]
            raise InputError(
                f"{point.source}: a second reference row for {point.formula} at "
                f"{point.temperature_K:g} K"
            )
    return reference


def compare(stages: Sequence[Mapping], reference: Reference, formula: str) -> Comparison:
    """Compare one composition's stages with the reference at the same temperatures.

    Parameters
    ----------
    stages
        One dict per temperature (the store's stage documents, serialised) with ``formula``,
        ``temperature_K``, ``volume_per_atom_A3``, ``density_g_cm3``, ``diffusivity`` =
        ``{species: {"D_cm2_s", "D_sigma_cm2_s", "diffusive", ...}}`` and ``partial_rdf`` =
        ``{"r_A": bin centres, "g": {"Li-O": [...], ...}}`` (or the store's ``rdf`` document with
        ``edges_A``, ``pairs`` and ``g``). Missing entries are reported as absent.
    reference
        From :func:`read_reference`.
    formula
        The composition; the reference's formula may be written differently (``Li4O2``).
    """
    key = formula_key(formula)
    points = [p for p in reference.points if formula_key(p.formula) == key]
    rdfs = [r for r in reference.rdfs if formula_key(r.formula) == key]
    if not points and not rdfs:
        have = ", ".join(reference.formulas) or "nothing"
        raise InputError(f"no reference data for {formula}; the reference has {have}")
    by_temperature: dict[float, dict] = {}
    for stage in stages:
        temperature = _stage_temperature(stage, formula)
        if formula_key(str(stage.get("formula", formula))) != key:
            raise InputError(f"the stage at {temperature:g} K is {stage['formula']}, not {formula}")
        slot = _slot(by_temperature, temperature)
        if "stage" in slot:
            raise InputError(f"two stages of {formula} at {temperature:g} K")
        slot["stage"] = stage
    for point in points:
        _slot(by_temperature, point.temperature_K)["point"] = point
    for rdf in rdfs:
        _slot(by_temperature, rdf.temperature_K).setdefault("rdfs", []).append(rdf)
    mass = _mass_per_atom_amu(formula)
    temperatures = [
        _compare_temperature(t, slot.get("stage"), slot.get("point"), slot.get("rdfs", []), mass)
        for t, slot in sorted(by_temperature.items())
    ]
    return Comparison(formula=formula, temperatures=temperatures)


def formula_key(formula: str) -> tuple[tuple[str, float], ...]:
    """Element fractions of ``formula`` (sorted, rounded), equal for ``Li2O`` and ``Li4O2``."""
    counts = _element_counts(formula)
    total = sum(counts.values())
    return tuple(sorted((el, round(n / total, 6)) for el, n in counts.items()))


def _element_counts(formula: str) -> dict[str, float]:
    from ase.data import chemical_symbols

    text = str(formula).strip()
    tokens = _FORMULA_TOKEN.findall(text)
    counts: dict[str, float] = {}
    for element, amount in tokens:
        if element not in chemical_symbols[1:]:
            raise InputError(f"unknown element {element!r} in formula {formula!r}")
        counts[element] = counts.get(element, 0.0) + (float(amount) if amount else 1.0)
    if not text or "".join(e + a for e, a in tokens) != text or not sum(counts.values()) > 0:
        raise InputError(f"cannot read formula {formula!r} (write it like Li2O or LiCuSi2)")
    return counts


def _mass_per_atom_amu(formula: str) -> float:
    from ase.data import atomic_masses, atomic_numbers

    counts = _element_counts(formula)
    mass = sum(n * atomic_masses[atomic_numbers[el]] for el, n in counts.items())
    return float(mass / sum(counts.values()))


def _slot(by_temperature: dict[float, dict], temperature: float) -> dict:
    for known, slot in by_temperature.items():
        if abs(known - temperature) <= TEMPERATURE_TOLERANCE_K:
            return slot
    return by_temperature.setdefault(float(temperature), {})


def _stage_temperature(stage: Mapping, formula: str) -> float:
    try:
        return float(stage["temperature_K"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"a stage of {formula} has no temperature_K") from None


def _compare_temperature(
    temperature: float,
    stage: Mapping | None,
    point: ReferencePoint | None,
    rdfs: list[ReferenceRDF],
    mass_per_atom_amu: float,
) -> TemperatureComparison:
    out = TemperatureComparison(temperature_K=temperature)
    if stage is None:
        out.absent.append("no stage of ours at this temperature")
        stage = {}
    if point is None:
        out.absent.append("no reference volume or diffusivity")
    volume = stage.get("volume_per_atom_A3")
    density = stage.get("density_g_cm3")
    if density is None and volume:
        density = mass_per_atom_amu * AMU_A3_TO_G_CM3 / volume
    out.volume_per_atom_A3, out.density_g_cm3 = volume, density
    if point is not None:
        out.reference_volume_per_atom_A3 = point.volume_per_atom_A3
        out.reference_density_g_cm3 = point.density_g_cm3 or (
            mass_per_atom_amu * AMU_A3_TO_G_CM3 / point.volume_per_atom_A3
        )
        out.volume_error_pct = _error_pct(volume, out.reference_volume_per_atom_A3)
        out.density_error_pct = _error_pct(density, out.reference_density_g_cm3)
        ours = stage.get("diffusivity") or {}
        out.diffusivity = [
            _compare_d(species, d_ref, point.D_sigma_cm2_s.get(species), ours.get(species))
            for species, d_ref in point.D_cm2_s.items()
        ]
    partial = _stage_partials(stage)
    if stage and rdfs and partial is None:
        out.absent.append("no partial RDF in our stage")
    if partial is not None and not rdfs:
        out.absent.append("no reference RDF")
    out.rdf = [_compare_rdf(*partial, ref) for ref in rdfs] if partial is not None else []
    return out


def _error_pct(ours: float | None, reference: float) -> float | None:
    return None if ours is None else 100.0 * (ours - reference) / reference


def _compare_d(
    species: str, d_ref: float, sigma_ref: float | None, ours: Mapping | None
) -> DiffusivityComparison:
    d = sigma = ratio = ratio_sigma = diffusive = None
    if ours is not None and ours.get("D_cm2_s") is not None:
        d, sigma = float(ours["D_cm2_s"]), ours.get("D_sigma_cm2_s")
        diffusive = ours.get("diffusive")
        ratio = d / d_ref
        ratio_sigma = math.hypot((sigma or 0.0) / d_ref, d * (sigma_ref or 0.0) / d_ref**2)
    return DiffusivityComparison(
        species=species,
        D_cm2_s=d,
        D_sigma_cm2_s=sigma,
        diffusive=diffusive,
        reference_D_cm2_s=d_ref,
        reference_D_sigma_cm2_s=sigma_ref,
        ratio=ratio,
        ratio_sigma=ratio_sigma,
    )


def _stage_partials(stage: Mapping) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """``(r, {pair: g})`` from ``partial_rdf`` (r_A, g) or from the store's ``rdf`` document."""
    partial, doc = stage.get("partial_rdf"), stage.get("rdf")
    if partial:
        return np.asarray(partial["r_A"], dtype=float), {
            pair: np.asarray(g, dtype=float) for pair, g in partial["g"].items()
        }
    if isinstance(doc, Mapping) and {"edges_A", "pairs", "g"} <= set(doc):
        edges = np.asarray(doc["edges_A"], dtype=float)
        return 0.5 * (edges[1:] + edges[:-1]), {
            pair: np.asarray(g, dtype=float) for pair, g in zip(doc["pairs"], doc["g"], strict=True)
        }
    return None


def _pair_key(name: str) -> tuple[str, ...]:
    return tuple(sorted(name.split("-")))


def _compare_rdf(r: np.ndarray, g: dict[str, np.ndarray], ref: ReferenceRDF) -> RDFComparison:
    ours = {_pair_key(pair): values for pair, values in g.items()}
    resampled = {
        pair: resample(r, ours[_pair_key(pair)], ref.r_A)
        for pair in ref.g
        if _pair_key(pair) in ours
    }
    missing = [pair for pair in ref.g if pair not in resampled]
    inside = np.isfinite(next(iter(resampled.values()))) if resampled else np.zeros(0, bool)
    if not inside.any():
        scores, grid = {"all": float("nan")}, np.zeros(0)
    else:
        grid = ref.r_A[inside]
        scores = pooled_r2(
            {pair: ref.g[pair][inside] for pair in resampled},
            {pair: values[inside] for pair, values in resampled.items()},
        )
    pooled = scores.pop("all")
    return RDFComparison(
        label=ref.label,
        source=ref.source,
        r2=scores,
        pooled_r2=pooled,
        r_range_A=(float(grid[0]), float(grid[-1])) if len(grid) else (math.nan, math.nan),
        missing_pairs=missing,
        r_A=grid,
        g={pair: values[inside] for pair, values in resampled.items()},
        reference_g={pair: ref.g[pair][inside] for pair in resampled},
    )


@dataclass
class _Table:
    """A CSV file: its header and numbered rows (blank lines skipped)."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]

    @classmethod
    def read(cls, path: Path) -> _Table:
        if not path.is_file():
            raise InputError(f"no such reference file: {path}")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                lines = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{path}: not a readable CSV file ({exc})") from None
        if not lines:
            raise InputError(f"{path}: empty file")
        header = [c.strip() for c in lines[0][1]]
        for line, row in lines[1:]:
            if len(row) != len(header):
                raise InputError(
                    f"{path}, line {line}: {len(row)} values for {len(header)} columns"
                )
        return cls(path, header, [(line, [c.strip() for c in row]) for line, row in lines[1:]])

    def number(
        self, line: int, row: list[str], column: str, optional: bool = False, zero: bool = False
    ) -> float | None:
        """The value in ``column``: a finite number > 0 (>= 0 with ``zero``), None if optional and
        empty."""
        text = row[self.header.index(column)]
        if optional and text == "":
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
            kind = "non-negative" if zero else "positive"
            raise InputError(
                f"{self.path}, line {line}, column {column!r}: expected a {kind} number, "
                f"got {text!r}"
            )
        return value

    def reject_unknown(self, columns: list[str], expected: str) -> None:
        """``InputError`` naming the first column that is neither blank nor accepted."""
        for column in columns:
            if column:
                raise InputError(f"{self.path}: unknown column {column!r} (expected {expected})")


def _read_points(table: _Table) -> list[ReferencePoint]:
    header = table.header
    for column in POINT_COLUMNS[:3]:
        if column not in header:
            raise InputError(f"{table.path}: no {column!r} column (it has {', '.join(header)})")
    d_columns = {c: _D_COLUMN.match(c) for c in header if _D_COLUMN.match(c)}
    species = [m.group(1) for m in d_columns.values() if not m.group(2)]
    for column, match in d_columns.items():
        if match.group(2) and match.group(1) not in species:
            raise InputError(f"{table.path}: {column!r} without D_{match.group(1)}_cm2_s")
    table.reject_unknown(
        [c for c in header if c not in POINT_COLUMNS and c not in d_columns],
        "formula, temperature_K, volume_per_atom_A3, density_g_cm3, D_X_cm2_s, D_X_sigma_cm2_s",
    )
    points = []
    for line, row in table.rows:
        formula = row[header.index("formula")]
        _element_counts_at(table, line, formula)
        d, sigma = {}, {}
        for s in species:
            value = table.number(line, row, f"D_{s}_cm2_s", optional=True)
            if value is not None:
                d[s] = value
                if f"D_{s}_sigma_cm2_s" in header:
                    error = table.number(line, row, f"D_{s}_sigma_cm2_s", True, zero=True)
                    if error is not None:
                        sigma[s] = error
        points.append(
            ReferencePoint(
                formula=formula,
                temperature_K=table.number(line, row, "temperature_K"),
                volume_per_atom_A3=table.number(line, row, "volume_per_atom_A3"),
                density_g_cm3=(
                    table.number(line, row, "density_g_cm3", optional=True)
                    if "density_g_cm3" in header
                    else None
                ),
                D_cm2_s=d,
                D_sigma_cm2_s=sigma,
                source=f"{table.path}, line {line}",
            )
        )
    return points


def _element_counts_at(table: _Table, line: int, formula: str) -> dict[str, float]:
    try:
        return _element_counts(formula)
    except InputError as exc:
        raise InputError(f"{table.path}, line {line}: {exc}") from None


def _read_rdfs(table: _Table, default_temperature_K: float) -> list[ReferenceRDF]:
    header, path = table.header, table.path
    pairs = [c for c in header if _PAIR.match(c)]
    table.reject_unknown(
        [c for c in header if c not in pairs and c not in ("r", "temperature_K", "formula")],
        "r, pair columns like Li-O, temperature_K, formula",
    )
    if not pairs:
        raise InputError(f"{path}: no pair columns like Li-O (it has {', '.join(header)})")
    named = _RDF_NAME.match(path.name.removesuffix(".csv"))
    if "formula" not in header and named is None:
        raise InputError(
            f"{path}: cannot tell the formula: name the file <label>_RDF_<formula>.csv or add a "
            "formula column"
        )
    label = named.group("label") if named else path.name.removesuffix(".csv")
    groups: dict[tuple[str, float], list[tuple[int, list[str]]]] = {}
    for line, row in table.rows:
        formula = row[header.index("formula")] if "formula" in header else named.group("formula")
        temperature = (
            table.number(line, row, "temperature_K")
            if "temperature_K" in header
            else default_temperature_K
        )
        groups.setdefault((formula, temperature), []).append((line, row))
    tables = []
    for (formula, temperature), rows in groups.items():
        elements = _element_counts_at(table, rows[0][0], formula)
        for pair in pairs:
            if not set(_PAIR.match(pair).groups()) <= set(elements):
                raise InputError(f"{path}: pair column {pair!r} has an element not in {formula}")
        r = np.array([table.number(line, row, "r", zero=True) for line, row in rows])
        decreasing = np.flatnonzero(np.diff(r) <= 0)
        if len(decreasing):
            line = rows[decreasing[0] + 1][0]
            raise InputError(f"{path}, line {line}: r must increase from row to row")
        g = {
            pair: np.array([table.number(line, row, pair, zero=True) for line, row in rows])
            for pair in pairs
        }
        tables.append(ReferenceRDF(label, formula, float(temperature), r, g, str(path)))
    return tables


def _pm(value: float | None, sigma: float | None, spec: str, sigma_spec: str) -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}" if sigma is None else f"{value:{spec}} ± {sigma:{sigma_spec}}"
