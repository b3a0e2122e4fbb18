"""Benchmark: amorph's GPAW engine against GPAW's own ASE calculator, per SCF and per MD step.

A liquid Li2O cell (``--atoms`` at 10.9 Å³/atom, the converged-PBE zero-pressure volume at 2000 K;
packed by packmol, then 200 CHGNet steps at 2000 K) is computed with amorph's rules (PAW-PBE, Li
with 1s in the valence, 900 eV, Γ) three ways, each in its own process: GPAW's ASE calculator with
ASE's Nosé–Hoover chain (the peer), amorph's engine on one rank (GPAW in amorph's process), and
amorph on ``--ranks`` MPI ranks (GPAW behind the socket). Each does one SCF from scratch and
``--steps`` MD steps. Printed: seconds per SCF from scratch and per MD step, peak memory per
process, and the ratio of amorph's step time to the peer's.

    python scripts/bench_gpaw.py --atoms 33 --steps 3
    python scripts/bench_gpaw.py --atoms 99 --steps 1 --variants amorph-mpi   # ~25 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VOLUME_PER_ATOM_A3 = 10.9
TEMPERATURE_K = 2000.0
VARIANTS = ("peer", "amorph", "amorph-mpi")


def liquid(atoms: int, folder: Path):
    """A CHGNet liquid of Li2O at 2000 K and VOLUME_PER_ATOM_A3, cached in ``folder``."""
    from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
    from amorph.structure.composition import formula_units_for, parse_composition
    from amorph.structure.packing import random_packed_structure

    composition = parse_composition("Li2O")
    units = formula_units_for(composition, atoms)
    start = random_packed_structure(composition, units, VOLUME_PER_ATOM_A3, seed=1)
    task = MDTask(
        MDState(start), TEMPERATURE_K, 200, MDSettings(thermostat_time_fs=20.0), folder, seed=1
    )
    return EngineSpec("chgnet").load().run_one(task).final_state.structure


def peak_memory_GB() -> float:
    """The peak resident memory (GB) of this process, or of its largest child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1e6


def run_variant(args: argparse.Namespace) -> dict:
    """One way of computing (in this process): SCF from scratch, then MD steps."""
    from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
    from amorph.md.gpaw.settings import GpawSettings
    from amorph.trajectory import Trajectory

    folder = Path(args.outputs).resolve()
    structure = Trajectory.load(folder / "liquid" / "md.npz").structure(-1)
    options = {"cutoff_eV": args.cutoff, "ranks": args.ranks, "basis_correction": False}
    if args.ranks > 1:
        options["mpi_command"] = "mpiexec --oversubscribe -n {ranks}"
    settings = MDSettings(thermostat_time_fs=100.0)
    clock = time.perf_counter()
    if args.variant == "peer":
        import gpaw
        from ase import units
        from ase.md.nose_hoover_chain import NoseHooverChainNVT
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        from gpaw import GPAW
        from pymatgen.io.ase import AseAtomsAdaptor

        settings_ = GpawSettings(**options)
        settings_.check(structure)  # generates the Li dataset if this machine has none yet
        parameters = settings_.parameters(structure)
        gpaw.setup_paths.insert(0, str(settings_.dataset_dir))
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = GPAW(**parameters, txt=str(folder / "peer.txt"))
        MaxwellBoltzmannDistribution(
            atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(1)
        )
        atoms.get_forces(), atoms.get_stress()
        scf = time.perf_counter() - clock
        dyn = NoseHooverChainNVT(
            atoms, 2 * units.fs, temperature_K=TEMPERATURE_K, tdamp=100 * units.fs
        )
        dyn.attach(lambda: atoms.get_stress(), interval=1)  # amorph samples the stress every step
        clock = time.perf_counter()
        dyn.run(args.steps)
    else:
        engine = EngineSpec("gpaw", options=options).load()
        engine.evaluate([structure], folder / args.variant)
        scf = time.perf_counter() - clock
        clock = time.perf_counter()
        task = MDTask(
            MDState(structure), TEMPERATURE_K, args.steps, settings, folder / args.variant, seed=1
        )
        engine.run_one(task)
    step = (time.perf_counter() - clock - (0 if args.variant == "peer" else scf)) / args.steps
    return {"variant": args.variant, "scf_s": scf, "step_s": step, "memory_GB": peak_memory_GB()}


def main() -> None:
    """Run each variant in its own process and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=33)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cutoff", type=float, default=900.0)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--outputs", default="bench_gpaw")
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=VARIANTS, help="default: all three"
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one, in-process
    args = parser.parse_args()
    if args.variant:
        if args.variant != "amorph-mpi":
            args.ranks = 1
        print(json.dumps(run_variant(args)))
        return
    folder = Path(args.outputs).resolve()
    structure = liquid(args.atoms, folder / "liquid")
    rows = []
    for variant in args.variants:
        command = [sys.executable, __file__, "--variant", variant, "--atoms", str(args.atoms)]
        command += ["--steps", str(args.steps), "--cutoff", str(args.cutoff)]
        command += ["--ranks", str(args.ranks), "--outputs", str(folder)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    peer = rows[0]["step_s"] if rows[0]["variant"] == "peer" else math.nan
    print(f"Li2O, {len(structure)} atoms, {args.cutoff:g} eV, Γ, {args.steps} MD steps")
    print(f"{'':16} {'SCF (s)':>8} {'step (s)':>9} {'memory (GB)':>12} {'step / peer':>12}")
    for row in rows:
        ranks = args.ranks if row["variant"] == "amorph-mpi" else 1
        name = f"{row['variant']} ({ranks} rank{'s' if ranks > 1 else ''})"
        print(
            f"{name:16} {row['scf_s']:8.1f} {row['step_s']:9.1f} {row['memory_GB']:12.2f} "
            f"{row['step_s'] / peer:12.2f}"
        )
    conditions = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "threads_per_rank": 1,
    }
    print(json.dumps({"rows": rows, "atoms": len(structure), "conditions": conditions}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
