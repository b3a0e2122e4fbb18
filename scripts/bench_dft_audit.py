"""Benchmark: converged PBE (GPAW) against the surrogates and the published AIMD volumes.

For each shared reference composition (Li2O, Li3N, LiAlO2, LiZn) at 2000 K:

1. CHGNet's own liquid: amorph's protocol (melt at 5000 K, quench to 2000 K, volume search, check
   and production; stored under ``--outputs`` so a rerun reuses it) gives CHGNet's zero-pressure
   volume and frames there; an NVT run at the published AIMD volume gives frames there.
2. ``--frames`` frames at each volume go to GPAW (amorph's rules: PAW-PBE, the converged cutoff,
   Γ, semicore Li) and to CHGNet and SevenNet-0 on the same frames.
3. The zero-pressure volume each implies: ln V interpolated (or extrapolated) linearly against the
   mean pressure at the two volumes.
4. On one frame: the basis-set stress at an ENMAX-like cutoff (``--low-cutoff``, VASP's Li_sv
   ENMAX; below the cutoffs the engine refuses for runs of O and N), and for the first composition
   the k-point effect (the rule's grid against 2×2×2).
5. ``--md-steps``: the sampling bias of single points on surrogate frames: a short GPAW MD of a
   small Li2O cell (``--md-atoms``, ``--md-kpoints``) at the AIMD volume, from CHGNet's liquid
   there, against GPAW single points on ``--md-frames`` CHGNet frames of the same cell.

    python scripts/bench_dft_audit.py                    # hours on a 2-core CPU (2 MPI ranks)
    python scripts/bench_dft_audit.py --frames 2 --compositions Li2O --md-steps 0   # a quick look

Prints one table and a JSON line. Every number comes from this command: the CHGNet runs and the
DFT single points (by frame and settings) are kept under ``--outputs``, so a rerun computes only
what it has not.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA
from amorph.errors import EmptyStoreError, InputError
from amorph.flows.presets import protocol_maker
from amorph.managers.local import run_flow
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.results.outputs import Outputs
from amorph.results.reader import Database
from amorph.results.store import open_store
from amorph.trajectory import Trajectory

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "aimd_reference"
TEMPERATURE_K = 2000.0


def aimd_volumes() -> dict[str, float]:
    """Published AIMD volume per atom (Å³) at 2000 K, by formula."""
    with open(REFERENCE / "multi_temperature.csv", newline="") as handle:
        return {
            row["formula"]: float(row["volume_per_atom_A3"])
            for row in csv.DictReader(handle)
            if float(row["temperature_K"]) == TEMPERATURE_K
        }


def chgnet_stage(formula: str, args: argparse.Namespace):
    """CHGNet's 2000 K stage of ``formula`` (run here unless stored)."""
    return stage_at(protocol_entry(formula, args, EngineSpec("chgnet"), Outputs(args.outputs)))


def stage_at(entry):
    """The stage of a protocol's entry at the benchmark's temperature."""
    return next(s for s in entry.stages if s.doc.temperature_K == TEMPERATURE_K)


def protocol_entry(formula: str, args: argparse.Namespace, engine: EngineSpec, outputs: Outputs):
    """The composition entry of amorph's protocol (melt at 5000 K, quench to 2000 K) with
    ``engine``, stored in ``outputs`` (run here unless stored there)."""
    store = open_store(outputs.store, outputs.root)
    try:
        (entry,) = Database(store, outputs.description).compositions(formula, engine.label)
    except (InputError, EmptyStoreError):  # not stored yet: run it
        maker = protocol_maker(
            "demo",
            engine=engine,
            seed=args.seed,
            temperatures=[5000.0, TEMPERATURE_K],
            atoms=args.atoms,
            eos_ps=args.eos_ps,
            check_ps=args.eos_ps,
            production_ps=args.production_ps,
            run_dir=str(outputs.runs),
            second_opinion="none",
        )
        run_flow(maker.make(formula), store, outputs)
        (entry,) = Database(store, outputs.description).compositions(formula, engine.label)
    return entry


def frames_at(trajectory: Trajectory, count: int) -> list:
    """``count`` frames evenly spread over the second half of ``trajectory``."""
    indices = np.linspace(trajectory.n_frames // 2, trajectory.n_frames - 1, count).round()
    return [trajectory.structure(int(i)) for i in indices]


def nvt_frames(structure, volume_A3: float, args, folder: Path) -> list:
    """``args.frames`` frames of the second half of :func:`nvt_trajectory`."""
    return frames_at(nvt_trajectory(structure, volume_A3, args, folder), args.frames)


def nvt_trajectory(structure, volume_A3: float, args, folder: Path) -> Trajectory:
    """CHGNet NVT at ``volume_A3`` from ``structure`` (scaled), ``args.production_ps`` long."""
    scaled = structure.copy()
    scaled.scale_lattice(volume_A3)
    task = MDTask(
        MDState(scaled),
        TEMPERATURE_K,
        round(args.production_ps * 500),
        MDSettings(thermostat_time_fs=20.0),
        folder,
        seed=1,
    )
    return Trajectory.load(EngineSpec("chgnet").load().run_one(task).trajectory_path)


def pressures(engine, frames, folder: Path) -> np.ndarray:
    """The virial pressures (GPa) ``engine`` gives ``frames``."""
    return np.array([p.virial_pressure_GPa for p in engine.evaluate(frames, folder)])


def frame_key(frame, settings: str) -> str:
    """A digest of ``frame`` (cell, positions to 1e-6 Å, atoms) and the ``settings`` it is
    computed with."""
    data = np.round(np.concatenate([frame.lattice.matrix.ravel(), frame.cart_coords.ravel()]), 6)
    text = f"{settings} {frame.atomic_numbers}".encode()
    return hashlib.sha256(data.tobytes() + text).hexdigest()[:20]


def cached(folder: Path, frames, settings: str, compute) -> np.ndarray:
    """``compute(frames)`` (pressures, GPa), kept in ``folder/pressures.json`` by frame and
    settings, with the seconds each took, one frame at a time: a rerun computes only what it has
    not seen."""
    path = folder / "pressures.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    keys = [frame_key(frame, settings) for frame in frames]
    for frame, key in zip(frames, keys, strict=True):
        if key not in known:
            clock = time.perf_counter()
            (value,) = compute([frame])
            known[key] = {"P_GPa": float(value), "s": time.perf_counter() - clock}
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known, indent=1))
    return np.array([known[key]["P_GPa"] for key in keys])


def dft_pressures(engine, frames, folder: Path) -> np.ndarray:
    """:func:`pressures` of a DFT engine, :func:`cached` in ``folder``."""
    settings = json.dumps(engine.describe(frames[0]), sort_keys=True, default=str)
    return cached(folder, frames, settings, lambda todo: pressures(engine, todo, folder))


def seconds_per_point(folder: Path) -> float:
    """The mean seconds per single point of those computed (not read back) in ``folder``."""
    known = json.loads((folder / "pressures.json").read_text()).values()
    seconds = [point["s"] for point in known if point["s"] is not None]
    return float(np.mean(seconds)) if seconds else math.nan


def pressure_at_cutoff(gpaw, frame, cutoff_eV: float, log: Path) -> float:
    """GPAW's virial pressure on ``frame`` at ``cutoff_eV``, through the engine's session: the
    engine option ``cutoff_eV`` refuses the cutoffs below an element's minimum (O 700, N 800 eV)
    that the basis-set stress here is about."""
    with gpaw.session(frame, log, cutoff_eV) as calculator:
        atoms = AseAtomsAdaptor.get_atoms(frame)
        atoms.calc = calculator
        stress = atoms.get_stress(voigt=False, include_ideal_gas=False)
    return float(-np.trace(stress) / 3 * EV_A3_TO_GPA)


def zero_volume(v1: float, p1: float, v2: float, p2: float) -> float:
    """Where the line through (ln v1, p1) and (ln v2, p2) crosses zero pressure."""
    slope = (p2 - p1) / (math.log(v2) - math.log(v1))
    return math.exp(math.log(v1) - p1 / slope)


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    """The mean of ``values`` and its standard error."""
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def bench_composition(formula: str, v_aimd: float, args, gpaw, surrogates, folder) -> dict:
    """One row of the table: DFT and the surrogates on CHGNet frames at two volumes."""
    stage = chgnet_stage(formula, args)
    n_atoms = stage.doc.n_atoms
    v_chgnet = stage.doc.volume_per_atom_A3
    sets = {
        "aimd": nvt_frames(stage.doc.structure, v_aimd * n_atoms, args, folder / "nvt_aimd"),
        "chgnet": frames_at(stage.trajectory(), args.frames),
    }
    frame = sets["aimd"][0]
    row = {
        "formula": formula,
        "atoms": n_atoms,
        "V_aimd": v_aimd,
        "V_chgnet_protocol": v_chgnet,
        "cutoff_eV": gpaw.settings.cutoff(sorted(frame.symbol_set)),
        "kpoints_aimd": gpaw.settings.kpoint_grid(frame),
    }
    mean, p_dft = {}, {}
    for where, frames in sets.items():
        volume = frames[0].volume / n_atoms
        p_dft[where] = dft_pressures(gpaw, frames, folder / f"gpaw_{where}")
        row[f"gpaw_s_per_point_{where}"] = seconds_per_point(folder / f"gpaw_{where}")
        row[f"P_dft_{where}"], row[f"P_dft_sem_{where}"] = mean_sem(p_dft[where])
        mean[("dft", where)] = (volume, row[f"P_dft_{where}"])
        for name, engine in surrogates.items():
            difference = pressures(engine, frames, folder) - p_dft[where]
            row[f"dP_{name}_{where}"], row[f"dP_sem_{name}_{where}"] = mean_sem(difference)
            mean[(name, where)] = (volume, row[f"P_dft_{where}"] + row[f"dP_{name}_{where}"])
        row[f"V_{where}_frames"] = volume
    for name in ("dft", *surrogates):
        row[f"V0_{name}"] = zero_volume(*mean[(name, "aimd")], *mean[(name, "chgnet")])
    p_frame = float(p_dft["aimd"][0])  # on ``frame``
    settings = (
        json.dumps(gpaw.describe(frame), sort_keys=True, default=str)
        + f" cutoff {args.low_cutoff:g}"
    )
    low = cached(
        folder / "low",
        [frame],
        settings,
        lambda todo: [
            pressure_at_cutoff(gpaw, todo[0], args.low_cutoff, folder / "low" / "evaluate.log")
        ],
    )
    row["basis_stress_low_cutoff_GPa"] = p_frame - float(low[0])
    if args.kpoints and formula == args.compositions[0]:
        dense = EngineSpec("gpaw", options={**gpaw_options(args), "kpoints": [2, 2, 2]}).load()
        dense_p = dft_pressures(dense, [frame], folder / "k222")
        row["kpoint_effect_GPa"] = float(dense_p[0]) - p_frame
    return row


def md_bias(args, gpaw, folder: Path) -> dict:
    """A short GPAW MD of a small Li2O cell at the AIMD volume, from CHGNet's liquid there,
    against GPAW single points on CHGNet frames of the same cell at the same volume."""
    from amorph.flows.cell import RandomCellMaker
    from amorph.structure.composition import parse_composition

    composition = parse_composition("Li2O")
    volume = aimd_volumes()["Li2O"] * args.md_atoms
    cell = RandomCellMaker(atoms=args.md_atoms, volume_per_atom=volume / args.md_atoms)
    start = cell.make.original(cell, composition, TEMPERATURE_K)
    settings = MDSettings(thermostat_time_fs=20.0)
    hot = (
        EngineSpec("chgnet")
        .load()
        .run_one(MDTask(MDState(start), 3000.0, 500, settings, folder / "melt", seed=2))
    )  # a liquid to start from, by CHGNet
    chgnet_run = (
        EngineSpec("chgnet")
        .load()
        .run_one(MDTask(hot.final_state, TEMPERATURE_K, 1000, settings, folder / "chgnet", seed=3))
    )
    frames = frames_at(Trajectory.load(chgnet_run.trajectory_path), args.md_frames)
    on_frames = dft_pressures(gpaw, frames, folder / "points")
    clock = time.perf_counter()
    dft_run = gpaw.run_one(
        MDTask(chgnet_run.final_state, TEMPERATURE_K, args.md_steps, settings, folder / "gpaw_md")
    )
    seconds = (time.perf_counter() - clock) / args.md_steps
    return {
        "md_atoms": args.md_atoms,
        "md_steps": args.md_steps,
        "md_frames": args.md_frames,
        "P_gpaw_md": dft_run.stats.pressure_GPa,
        "P_gpaw_md_sem": dft_run.stats.pressure_sem_GPa,
        "P_gpaw_on_chgnet_frames": float(on_frames.mean()),
        "P_gpaw_on_chgnet_frames_sem": mean_sem(on_frames)[1],
        "gpaw_s_per_md_step": seconds,
    }


def add_liquid_arguments(parser: argparse.ArgumentParser) -> None:
    """The compositions, CHGNet's protocol runs (atoms, lengths, seed), GPAW's ranks, the
    outputs folder: what the DFT benchmarks share."""
    parser.add_argument("--compositions", nargs="+", default=["Li2O", "Li3N", "LiAlO2", "LiZn"])
    parser.add_argument("--atoms", type=int, default=36)
    parser.add_argument("--eos-ps", type=float, default=0.5)
    parser.add_argument("--production-ps", type=float, default=2.0)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2, help="of CHGNet's protocol runs")
    parser.add_argument("--outputs", default="bench_dft")


def gpaw_options(args) -> dict:
    """The GPAW engine options of this benchmark (no basis correction: single points only)."""
    options = {"ranks": args.ranks, "basis_correction": False}
    if args.ranks > 1:
        options["mpi_command"] = "mpiexec --oversubscribe -n {ranks}"
    return options


def main() -> None:
    """Run the benchmark and print its table and JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_liquid_arguments(parser)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--low-cutoff", type=float, default=500.0)
    parser.add_argument("--kpoints", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--md-steps", type=int, default=150)
    parser.add_argument("--md-atoms", type=int, default=12)
    parser.add_argument("--md-frames", type=int, default=10, help="CHGNet frames of the MD check")
    parser.add_argument(
        "--md-kpoints", type=int, nargs=3, help="k-points of the MD check (default: the rule's)"
    )
    args = parser.parse_args()
    folder = Path(args.outputs).resolve() / "bench"
    gpaw = EngineSpec("gpaw", options=gpaw_options(args)).load()
    surrogates = {"chgnet": EngineSpec("chgnet").load(), "sevennet": EngineSpec("sevennet").load()}
    volumes = aimd_volumes()
    rows = [
        bench_composition(f, volumes[f], args, gpaw, surrogates, folder / f)
        for f in args.compositions
    ]
    md_options = gpaw_options(args) | ({"kpoints": args.md_kpoints} if args.md_kpoints else {})
    md_gpaw = EngineSpec("gpaw", options=md_options).load()
    bias = md_bias(args, md_gpaw, folder / "md_bias") if args.md_steps else {}
    print(
        f"\n{'formula':8} {'V AIMD':>7} {'V PBE':>7} {'V CHGNet':>8} {'(protocol)':>10} "
        f"{'V 7net':>7} {'P_PBE at V_AIMD':>16} {'CHGNet-PBE':>11} {'7net-PBE':>9} {'basis':>6}"
    )
    for r in rows:
        print(
            f"{r['formula']:8} {r['V_aimd']:7.2f} {r['V0_dft']:7.2f} {r['V0_chgnet']:8.2f} "
            f"{r['V_chgnet_protocol']:10.2f} {r['V0_sevennet']:7.2f} "
            f"{r['P_dft_aimd']:+9.2f} ± {r['P_dft_sem_aimd']:4.2f} "
            f"{r['dP_chgnet_aimd']:+11.2f} {r['dP_sevennet_aimd']:+9.2f} "
            f"{r['basis_stress_low_cutoff_GPa']:+6.2f} ({r['cutoff_eV']:g} eV)"
        )
    print(
        "volumes in Å³/atom at 2000 K; pressures in GPa (mean ± s.e.m. over frames); differences "
        f"on the same frames; basis: P(the rule's cutoff, in brackets) - P({args.low_cutoff:g} eV) "
        "on one frame"
    )
    print(json.dumps({"rows": rows, "md_bias": bias, "conditions": conditions(args)}))


def conditions(args, **extra) -> dict:
    """What the numbers were measured with: CPU, cores, GPAW's ranks, frames, atoms, ``extra``."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpaw_ranks": args.ranks,
        "atoms": args.atoms,
        **extra,
    } | ({"frames": args.frames} if hasattr(args, "frames") else {})


if __name__ == "__main__":
    main()
