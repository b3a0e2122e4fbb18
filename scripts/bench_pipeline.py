"""Benchmark: amorph's volume search + production against atomate2's MPMorphMLFFMDMaker.

Both run in one process, start from the same packmol cell, and use the same CHGNet model,
temperature and steps per MD run. amorph runs twice: with CHGNet's own ASE calculator
(``chgnet-ase``, as atomate2 uses it), where force evaluations are counted and timed at
CHGNetCalculator.calculate, which both call, to compare the orchestration; and with its default
batched CHGNet engine (``chgnet``), to compare what users get.

    python scripts/bench_pipeline.py                     # Li2O, 30 atoms, 3000 K, 60-step runs
    python scripts/bench_pipeline.py --formula Li2SiO3 --atoms 60 --steps 200 --json

Needs the bench extra (``pip install -e ".[bench]"``) for atomate2.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

from chgnet.model.dynamics import CHGNetCalculator
from jobflow import Flow, JobStore, run_locally
from maggma.stores import MemoryStore

from amorph.flows import ProductionMaker, Target, VolumeSearchMaker
from amorph.md.engine import EngineSpec, MDSettings
from amorph.results.documents import density_g_cm3
from amorph.structure.composition import formula_units_for, parse_composition
from amorph.structure.packing import random_packed_structure
from amorph.volume.estimate import estimate_volume_per_atom


class ForceCounter:
    """Counts and times CHGNetCalculator.calculate for whoever calls it."""

    def __init__(self) -> None:
        self.calls, self.seconds = 0, 0.0
        inner = CHGNetCalculator.calculate
        counter = self

        def calculate(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(self, *args, **kwargs)
            finally:
                counter.calls += 1
                counter.seconds += time.perf_counter() - start

        CHGNetCalculator.calculate = calculate

    def reset(self) -> None:
        """Zero the count and the time."""
        self.calls, self.seconds = 0, 0.0


def run_amorph(structure, temperature: float, steps: int, workdir: Path, kind: str) -> dict:
    """The volume search and production run of amorph on ``structure`` with engine ``kind``: the
    final volume per atom and density."""
    md = MDSettings(time_step_fs=2.0)
    duration_ps = steps * 2.0 / 1000
    engine = EngineSpec(kind)
    targets = [Target(structure, temperature, structure.composition.reduced_formula)]
    search = VolumeSearchMaker(engine=engine, duration_ps=duration_ps, md=md).make(targets)
    production = ProductionMaker(
        engine=engine, duration_ps=duration_ps, chunk_ps=duration_ps, md=md
    ).make(targets, [search.output[0].start])
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    flow = Flow([search, production])
    run_locally(
        flow, store=store, root_dir=workdir, create_folders=True, log=False, raise_immediately=True
    )
    (result,) = production.output.resolve(store)
    return {
        "volume_per_atom_A3": result.stats.volume_A3 / len(structure),
        "density_g_cm3": density_g_cm3(result.final_state.structure),
    }


def run_atomate2(structure, temperature: float, steps: int, workdir: Path) -> dict:
    """atomate2's MPMorph flow of ``structure`` with CHGNet: the final volume per atom and density
    (NaN, with a note, when it stops before its production run)."""
    from atomate2.forcefields.flows.mpmorph import MPMorphMLFFMDMaker
    from atomate2.forcefields.md import ForceFieldMDMaker

    md_maker = ForceFieldMDMaker(force_field_name="CHGNet", time_step=2.0, traj_file=None)
    maker = MPMorphMLFFMDMaker.from_temperature_and_steps(
        temperature, n_steps_convergence=steps, n_steps_production=steps, md_maker=md_maker
    )
    flow = maker.make(structure)
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    run_locally(
        flow, store=store, root_dir=workdir, create_folders=True, log=False, raise_immediately=True
    )
    try:
        final = flow.output.resolve(store)
    except ValueError:  # its volume search stopped the flow (stop_children) without raising
        return {
            "volume_per_atom_A3": float("nan"),
            "density_g_cm3": float("nan"),
            "note": "atomate2 stopped before its production run",
        }
    final_structure = (
        final.output.structure if hasattr(final, "output") else final["output"]["structure"]
    )
    if isinstance(final_structure, dict):
        from pymatgen.core import Structure

        final_structure = Structure.from_dict(final_structure)
    return {
        "volume_per_atom_A3": final_structure.volume / len(final_structure),
        "density_g_cm3": density_g_cm3(final_structure),
    }


def main() -> None:
    """Run amorph (ASE and batched CHGNet) and atomate2 on one packmol cell; print their costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formula", default="Li2O")
    parser.add_argument("--atoms", type=int, default=30)
    parser.add_argument("--temperature", type=float, default=3000.0)
    parser.add_argument(
        "--steps", type=int, default=60, help="steps per MD run (EOS points and production)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    composition = parse_composition(args.formula)
    structure = random_packed_structure(
        composition,
        formula_units_for(composition, args.atoms),
        estimate_volume_per_atom(composition),
        seed=1,
    )
    counter = ForceCounter()
    rows = {}
    runners = {
        "amorph": partial(run_amorph, kind="chgnet-ase"),
        "atomate2": run_atomate2,
        "amorph-batched": partial(run_amorph, kind="chgnet"),
    }
    for name, runner in runners.items():
        counter.reset()
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            row = runner(structure, args.temperature, args.steps, Path(tmp))
            wall = time.perf_counter() - start
        row.update(
            wall_s=wall,
            force_calls=counter.calls,
            force_s=counter.seconds,
            ms_per_force_call=1000 * counter.seconds / max(counter.calls, 1),
            outside_force_fraction=1 - counter.seconds / wall,
        )
        rows[name] = row
        if not args.json:
            print(f"{name}: {row}", flush=True)
    rows["ratios"] = {
        "wall_amorph_over_atomate2": rows["amorph"]["wall_s"] / rows["atomate2"]["wall_s"],
        "force_calls_amorph_over_atomate2": rows["amorph"]["force_calls"]
        / rows["atomate2"]["force_calls"],
        "wall_amorph_batched_over_atomate2": rows["amorph-batched"]["wall_s"]
        / rows["atomate2"]["wall_s"],
    }
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        f"{args.formula}, {len(structure)} atoms, {args.temperature:.0f} K, "
        f"{args.steps}-step runs, CHGNet, "
        f"start {structure.volume / len(structure):.2f} Å³/atom"
    )
    print(
        f"{'':15}{'wall s':>9}{'force calls':>12}{'ms/call':>9}{'outside forces':>15}"
        f"{'Å³/atom':>9}{'g/cm³':>7}"
    )
    for name, r in rows.items():
        if name == "ratios":
            continue
        counted = (
            f"{r['force_calls']:12d}{r['ms_per_force_call']:9.1f}"
            f"{r['outside_force_fraction']:15.1%}"
            if r["force_calls"]
            else f"{'(not counted: batched engine)':>36}"
        )
        print(
            f"{name:15}{r['wall_s']:9.1f}{counted}"
            f"{r['volume_per_atom_A3']:9.2f}{r['density_g_cm3']:7.2f}"
        )
    print("ratios amorph/atomate2: " + ", ".join(f"{k} {v:.2f}" for k, v in rows["ratios"].items()))
    for name, r in rows.items():
        if "note" in r:
            print(f"{name}: {r['note']}")


if __name__ == "__main__":
    main()
