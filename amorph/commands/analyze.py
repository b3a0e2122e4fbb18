"""``amorph analyze``: diffusivities, conductivities, RDFs and Arrhenius fits of MD trajectories."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from amorph.commands import add_store_options
from amorph.errors import InputError
from amorph.files import json_text

logger = logging.getLogger(__name__)

HELP = "diffusivity (with calibrated errors), RDF and Arrhenius analysis of MD trajectories"


def register(subparsers) -> None:
    """Add the ``analyze`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser("analyze", help=HELP, description=HELP)
    parser.add_argument(
        "trajectories",
        nargs="*",
        metavar="TRAJ",
        type=Path,
        help="XDATCAR, vasprun.xml (both may be .gz), ASE .traj/.extxyz or amorph .npz",
    )
    parser.add_argument(
        "--formula",
        help="also the production trajectories of this composition in the store (every "
        "temperature; with --engine, of that engine only)",
    )
    parser.add_argument("--engine", help="with --formula: results of this engine only")
    add_store_options(parser)
    parser.add_argument(
        "--species", nargs="+", metavar="EL", help="species to compute D for (default: all)"
    )
    parser.add_argument(
        "--time-step",
        type=float,
        metavar="FS",
        help="time between stored frames in fs (needed for XDATCAR and ASE files)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        metavar="K",
        help="temperature of each trajectory (one value for all, or one per trajectory)",
    )
    parser.add_argument(
        "--charge",
        action="append",
        default=[],
        metavar="EL=Z",
        help="ionic charge of a species for its Nernst-Einstein conductivity, repeatable "
        "(--charge Li=1 --charge O=-2); species without a charge get no conductivity",
    )
    parser.add_argument(
        "--guess-charges",
        action="store_true",
        help="charges from the most probable oxidation states of each trajectory's composition "
        "(pymatgen; none for intermetallics); --charge overrides them",
    )
    parser.add_argument("--fit-start", type=float, metavar="PS", help="start of the MSD fit window")
    parser.add_argument("--fit-end", type=float, metavar="PS", help="end of the MSD fit window")
    parser.add_argument(
        "--fit-method",
        choices=("ols", "gls"),
        default="ols",
        help="MSD fit: least squares (robust, default) or generalised least squares",
    )
    parser.add_argument(
        "--rdf-rmax", type=float, default=8.0, metavar="A", help="RDF range (default 8 Å)"
    )
    parser.add_argument(
        "--rdf-bin", type=float, default=0.02, metavar="A", help="RDF bin width (Å)"
    )
    parser.add_argument(
        "--rdf-stride",
        type=int,
        metavar="N",
        help="use every N-th frame for the RDF (default: at most 200 frames)",
    )
    parser.add_argument("--no-rdf", action="store_true", help="skip the RDF")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots into DIR")
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Analyse the trajectory files and ``--formula``'s stored trajectories; print the summary."""
    from amorph.analysis import analyze_trajectory, arrhenius_by_species, read_trajectory, summarize

    if not args.trajectories and not args.formula:
        raise InputError("give trajectory files, or --formula to analyse results in the store")
    temperatures = _per_trajectory(args.temperature, len(args.trajectories))
    charges = _charges(args.charge)
    trajectories = [
        read_trajectory(path, time_step_fs=args.time_step, temperature_K=temperature)
        for path, temperature in zip(args.trajectories, temperatures, strict=True)
    ]
    if args.formula:
        from amorph.results.outputs import Outputs
        from amorph.results.reader import Database

        database = Database.open(Outputs(args.outputs, args.store))
        trajectories += [stage.trajectory() for stage in database.stages(args.formula, args.engine)]
    reports = [
        analyze_trajectory(
            traj,
            species=args.species,
            charges=(_guessed_charges(traj) if args.guess_charges else {}) | charges,
            fit_start_ps=args.fit_start,
            fit_end_ps=args.fit_end,
            rdf_r_max=None if args.no_rdf else args.rdf_rmax,
            rdf_bin_width=args.rdf_bin,
            rdf_stride=args.rdf_stride,
            method=args.fit_method,
        )
        for traj in trajectories
    ]
    fits = arrhenius_by_species(reports)
    summary = summarize(reports, fits)
    if args.plots:
        summary["plots"] = [str(p) for p in _plots(args.plots, reports, fits)]
    print(json_text(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _per_trajectory(values: list[float] | None, n: int) -> list[float | None]:
    if values is None:
        return [None] * n
    if len(values) not in (1, n):
        raise InputError(f"give one --temperature for all trajectories or one for each of the {n}")
    return values * n if len(values) == 1 else values


def _charges(items: list[str]) -> dict[str, float]:
    from ase.data import chemical_symbols

    charges = {}
    for item in items:
        symbol, _, value = item.partition("=")
        try:
            charges[symbol.strip()] = float(value)
        except ValueError:
            symbol = ""
        if symbol.strip() not in chemical_symbols[1:]:
            raise InputError(f"--charge expects EL=Z with an element EL (e.g. Li=1), got {item!r}")
    return charges


def _guessed_charges(traj) -> dict[str, float]:
    """Oxidation-state charges of the trajectory's composition; empty (with a warning) if none."""
    from amorph.structure.composition import guess_charges

    formula = "".join(f"{el}{n}" for el, n in Counter(traj.symbols).items())
    charges = guess_charges(formula)
    if charges is None:
        logger.warning(
            "%s: no charge-balanced oxidation states for %s, no conductivities guessed",
            traj.metadata.get("source", "trajectory"),
            formula,
        )
    return charges or {}


def _plots(directory: Path, reports, fits) -> list[Path]:
    from amorph.analysis.plots import plot_arrhenius, plot_msd, plot_rdf
    from amorph.analysis.report import arrhenius_points

    paths = []
    for report in reports:
        stem = Path(report.source).name.replace(".", "_")
        curves = {s: (d.msd.lag_fs, d.msd.msd_A2) for s, d in report.diffusion.items()}
        msd_png = directory / f"msd_{stem}.png"
        paths.append(plot_msd(curves, report.diffusion, msd_png, title=stem))
        if report.rdf is not None:
            paths.append(plot_rdf(report.rdf, directory / f"rdf_{stem}.png", title=stem))
    if fits:
        points = {s: p for s, p in arrhenius_points(reports).items() if s in fits}
        paths.append(plot_arrhenius(fits, points, directory / "arrhenius.png"))
    return paths


def format_summary(summary: dict) -> str:
    """Human-readable tables of a ``summarize`` result."""
    from amorph.analysis.report import format_or_dash

    lines = []
    for traj in summary["trajectories"]:
        temperature = (
            "T unknown" if traj["temperature_K"] is None else f"{traj['temperature_K']:g} K"
        )
        lines.append(
            f"{traj['source']}: {traj['n_frames']} frames x {traj['frame_interval_fs']:g} fs "
            f"= {traj['duration_ps']:.3g} ps, {traj['n_atoms']} atoms, {temperature}"
        )
        lines.append(
            f"  {'species':<8}{'n':>5}  {'D (cm2/s)':>22}  {'fit (ps)':>15}  {'MSD exp':>7}  "
            f"{'MSD (A2)':>8}  {'diffusive':>9}  {'z':>5}  {'sigma_NE (mS/cm)':>16}"
        )
        notes = []
        for row in traj["species"]:
            d = f"{row['D_cm2_s']:.3e} ± {row['D_sigma_cm2_s']:.1e}"
            window = f"{row['fit_start_ps']:.3g}-{row['fit_end_ps']:.3g}"
            sigma = row.get("conductivity_mS_cm")
            sigma_text = "-" if sigma is None else f"{sigma:.3g}"
            lines.append(
                f"  {row['species']:<8}{row['n_atoms']:>5}  {d:>22}  {window:>15}  "
                f"{row['msd_exponent']:>7.2f}  {row['msd_reached_A2']:>8.3g}  "
                f"{'yes' if row['diffusive'] else 'NO':>9}  "
                f"{format_or_dash(row.get('charge'), '+g'):>5}  "
                f"{sigma_text:>16}"
            )
            if not row["diffusive"]:
                notes.append(f"  {row['species']} not diffusive: {row['non_diffusive_reason']}")
        lines += notes
        if traj["rdf"]:
            lines.append(f"  {'pair':<8}{'1st peak (A)':>14}{'1st min (A)':>13}  coordination")
            for shell in traj["rdf"]:
                cn = ", ".join(
                    f"{k.removeprefix('cn_').replace('_', ' ')} {format_or_dash(v, '.2f')}"
                    for k, v in shell.items()
                    if k.startswith("cn_")
                )
                lines.append(
                    f"  {shell['pair']:<8}{format_or_dash(shell['first_peak_A'], '.2f'):>14}"
                    f"{format_or_dash(shell['first_min_A'], '.2f'):>13}  {cn}"
                )
    for fit in summary["arrhenius"]:
        left_out = fit["non_diffusive_temperatures_K"]
        lines.append(
            f"Arrhenius {fit['species']}: Ea = {fit['Ea_eV']:.3f} ± {fit['Ea_sigma_eV']:.3f} eV, "
            f"D0 = {fit['D0_cm2_s']:.2e} ± {fit['D0_sigma_cm2_s']:.1e} cm2/s, "
            f"D(300 K) = {fit['D300K_cm2_s']:.2e} ± {fit['D300K_sigma_cm2_s']:.1e} cm2/s"
            + (
                f"; {len(left_out)} non-diffusive point(s) left out "
                f"({', '.join(f'{t:g}' for t in left_out)} K)"
                if left_out
                else ""
            )
        )
    for path in summary.get("plots", []):
        lines.append(f"plot: {path}")
    return "\n".join(lines)
