"""The tables the commands print: stages of a composition, and one line per composition."""

from __future__ import annotations

import sys
from typing import TextIO

from amorph.results.reader import CompositionEntry, StageEntry
from amorph.results.schemas import AuditDoc, TuningDoc


def print_stages(stages: list[StageEntry]) -> None:
    """One line per temperature: size, volume, density, pressure, convergence, D(Li), flags."""
    print(
        f"{'T (K)':>7} {'atoms':>5} {'V/atom (Å³)':>11} {'ρ (g/cm³)':>9} {'P (GPa)':>8} "
        f"{'converged':>9} {'D(Li) cm²/s':>12}  flags"
    )
    for stage in stages:
        s = stage.doc
        li = s.diffusivity.get("Li")
        d = "-" if li is None else f"{li.D_cm2_s:.2e}"
        print(
            f"{s.temperature_K:7.0f} {s.n_atoms:5d} {s.volume_per_atom_A3:11.2f} "
            f"{s.density_g_cm3:9.3f} {s.pressure_GPa:8.2f} {s.converged!s:>9} {d:>12}  "
            f"{' '.join(flags(stage))}"
        )
    for stage in stages:
        basis = stage.doc.basis
        if basis is not None:
            print(
                f"{stage.doc.temperature_K:.0f} K: pressures at the converged basis: the run's "
                f"{basis.cutoff_eV:g} eV + {basis.correction_GPa:+.2f} GPa measured at "
                f"{basis.converged_cutoff_eV:g} eV"
            )


def print_compositions(compositions: list[CompositionEntry]) -> None:
    """One line per composition and engine."""
    print(
        f"{'formula':12} {'engine':10} {'atoms':>5} {'temperatures (K)':28} "
        f"{'ρ at lowest T':>13} {'Ea(Li) eV':>10}  flags"
    )
    for c in compositions:
        lowest = c.stages[-1].doc
        temperatures = " ".join(f"{s.doc.temperature_K:.0f}" for s in c.stages)
        ea = c.doc.arrhenius.get("Li")
        marks = sorted({flag for stage in c.stages for flag in flags(stage)})
        print(
            f"{c.formula:12} {c.doc.engine:10} {lowest.n_atoms:5d} {temperatures:28} "
            f"{lowest.density_g_cm3:13.3f} {'-' if ea is None else f'{ea.Ea_eV:.3f}':>10}  "
            f"{' '.join(marks)}"
        )


def flags(stage: StageEntry) -> list[str]:
    """Short warnings about a stage: unconverged volume, non-diffusive species, disagreement."""
    s = stage.doc
    marks = [] if s.converged else ["unconverged"]
    marks += [f"non-diffusive:{sp}" for sp, d in s.diffusivity.items() if d.diffusive is False]
    if s.surrogate_disagreement:
        marks.append("surrogate_disagreement")
    if stage.audit is not None and stage.audit.disagreement:
        marks.append("dft_disagreement")
    return marks


def print_audits(audits: list[AuditDoc]) -> None:
    """One line per audited stage: pressures, their paired difference, force and energy errors,
    the volume shift DFT implies."""
    print(
        f"{'formula':10} {'T (K)':>6} {'engine':9} {'DFT':6} {'frames':>6} {'P DFT (GPa)':>11} "
        f"{'ΔP (GPa)':>14} {'F RMSE':>7} {'E spread':>9} {'ΔV/V':>6}  flags"
    )
    for a in audits:
        print(
            f"{a.formula:10} {a.temperature_K:6.0f} {a.engine:9} {a.dft_engine:6} "
            f"{len(a.frame_indices):6d} {a.dft_pressure_GPa:11.2f} "
            f"{a.pressure_difference_GPa:+7.2f} ± {a.pressure_difference_sem_GPa:4.2f} "
            f"{a.force_rmse_eV_A:7.3f} {1000 * a.energy_spread_eV_per_atom:6.1f} meV "
            f"{100 * a.volume_shift:+5.1f}%  {'dft_disagreement' if a.disagreement else ''}"
        )
    print(
        "ΔP: the stage engine's pressure minus DFT's on the same frames (± paired standard error); "
        "F RMSE in eV/Å; E spread per atom, the mean offset removed; ΔV/V: the change DFT's "
        "pressures imply for the zero-pressure volume"
    )


def print_tuning(tuning: TuningDoc, file: TextIO = sys.stdout) -> None:
    """One line per round of the audit/tune loop: its model and each stage's pressure against
    DFT's, then why it stopped."""
    print(f"audit/tune loop of {tuning.formula} against {tuning.dft_engine}:", file=file)
    for r in tuning.rounds:
        model = f"{r.engine_model} ({r.model_sha256[:12]})" if r.model_sha256 else "stock"
        differences = ", ".join(
            f"{t:.0f} K {dp:+.2f} ± {sem:.2f}"
            for t, dp, sem in zip(
                r.temperatures_K, r.pressure_differences_GPa, r.pressure_difference_sems_GPa,
                strict=True,
            )
        )  # fmt: skip
        print(f"round {r.round}, {model}: P − P_DFT (GPa) {differences}", file=file)
    tuned = f" (the last model tuned on {tuning.frames} DFT frames)" if tuning.frames else ""
    print(f"stopped: {tuning.stopped}{tuned}", file=file)
