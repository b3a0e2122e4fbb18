"""The tables the commands print: stages of a composition, and one line per composition."""

from __future__ import annotations

from amorph.results.reader import CompositionEntry, StageEntry


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
            f"{s.density_g_cm3:9.3f} {s.pressure_GPa:8.2f} {str(s.converged):>9} {d:>12}  "
            f"{' '.join(flags(stage))}"
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
    return marks
