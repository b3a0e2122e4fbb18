"""Benchmark: CHGNet tuned on a few PBE frames (``amorph tune``'s trainer) against stock CHGNet.

For each composition at 2000 K (the liquids of ``bench_dft_audit.py``, reused from ``--outputs``):

1. Frames of CHGNet's own liquid at two volumes, the published AIMD one and CHGNet's zero-pressure
   one (its protocol stage), ``--train`` + ``--test`` per volume, alternating along the second half
   of each run; GPAW labels them (energy, forces, stress; amorph's rules: PAW-PBE, converged
   cutoff, semicore Li), kept by frame under ``--outputs``.
2. CHGNet tuned on the training frames (``--freeze``/``--stress-weight``, or every combination
   with ``--sweep``, which chooses by the loss on the trainer's own validation frames).
3. On the test frames (never seen by the tuning): pressure difference to PBE (mean ± s.e.m.),
   force RMSE, energy spread, stock against tuned; the zero-pressure volume each implies against
   PBE's (ln V interpolated between the two volumes, as ``bench_dft_audit.py``).
4. The tuned model's own protocol (melt at 5000 K, quench to 2000 K, volume search, check,
   production; same seed as stock's): its volume and D(Li) against stock's.
5. Elsewhere: the relaxed crystal of the composition's formula (``--crystal``, PBE single point),
   pressure error and crystal − liquid energy per atom, stock against tuned.
6. Cost: DFT single points and their CPU time, against a DFT-only run of the same protocol
   (its MD steps × seconds per step, a step taken as 0.65 of a single point, ``bench_gpaw.py``).

    python scripts/bench_tune.py --compositions Li2O --outputs full   # ~1 h on a 2-core CPU

Prints one table and a JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from bench_dft_audit import (
    add_liquid_arguments,
    aimd_volumes,
    chgnet_stage,
    conditions,
    frame_key,
    frames_at,
    gpaw_options,
    nvt_trajectory,
    protocol_entry,
    stage_at,
    zero_volume,
)
from pymatgen.core import Structure

from amorph.constants import EV_A3_TO_GPA
from amorph.md.engine import EngineSpec
from amorph.potentials.chgnet import load_chgnet_model
from amorph.potentials.tuning import (
    FREEZE,
    LabelledFrame,
    TuneSettings,
    frame_errors,
    read_provenance,
    tune_chgnet,
)
from amorph.results.outputs import Outputs

STEP_PER_POINT = 0.65  # GPAW MD step / SCF single point, 33 atoms (bench_gpaw.py: 49.4 s / 76.6 s)
# space group, lattice parameters (Å; experimental), species, fractional coordinates
CRYSTALS = {
    "Li2O": ("Fm-3m", (4.65, 4.65, 4.65, 90, 90, 90), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]]),
    "Li3N": (  # alpha-Li3N
        "P6/mmm",
        (3.648, 3.648, 3.875, 90, 90, 120),
        ["N", "Li", "Li"],
        [[0, 0, 0], [0, 0, 0.5], [1 / 3, 2 / 3, 0]],
    ),
}


def labelled(gpaw, frames: list[Structure], folder: Path, source: str) -> list[LabelledFrame]:
    """GPAW's energy, forces and stress of each frame, kept by frame in ``folder/labels.json``."""
    path = folder / "labels.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    out = []
    for i, frame in enumerate(frames):
        settings = gpaw.describe(frame)
        key = frame_key(frame, json.dumps(settings, sort_keys=True, default=str))
        if key not in known:
            import time

            clock = time.perf_counter()
            (point,) = gpaw.evaluate([frame], folder)
            known[key] = {
                "energy_eV": point.energy_eV,
                "forces": point.forces.tolist(),
                "stress_GPa": (point.stress * EV_A3_TO_GPA).tolist(),
                "s": time.perf_counter() - clock,
            }
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known))
        label = known[key]
        out.append(
            LabelledFrame(
                frame,
                label["energy_eV"],
                np.asarray(label["forces"]),
                np.asarray(label["stress_GPa"]),
                {"file": source, "index": i, "s": label["s"]},
                settings,
            )
        )
    return out


def split(trajectory, train: int, test: int) -> tuple[list[Structure], list[Structure]]:
    """``train`` + ``test`` frames evenly over the second half of ``trajectory``, alternating."""
    indices = np.linspace(trajectory.n_frames // 2, trajectory.n_frames - 1, train + test).round()
    frames = [trajectory.structure(int(i)) for i in indices]
    step = (train + test) / test
    test_at = {round(step * k + step / 2 - 0.5) for k in range(test)}
    return (
        [f for i, f in enumerate(frames) if i not in test_at],
        [f for i, f in enumerate(frames) if i in test_at],
    )


def tuned(frames, settings: TuneSettings, folder: Path, suffix: str = "") -> tuple[Path, dict]:
    """The model tuned on ``frames`` with ``settings`` (kept in ``folder`` for reruns)."""
    name = f"{settings.freeze}-s{settings.stress_weight:g}-lr{settings.learning_rate:g}"
    name += (f"-a{settings.anchor:g}" if settings.anchor else "") + suffix
    model = folder / name
    if not model.is_dir():
        tune_chgnet(frames, settings, model, log=True)
    return model, read_provenance(model, "chgnet")


def md_steps(entry, args) -> int:
    """The MD steps of a composition entry's stages (EOS volumes, check runs, production)."""
    per_eos = round(args.eos_ps * 500)
    return sum(
        len(s.doc.eos.points) * per_eos + len(s.doc.check.runs) * per_eos + s.doc.production_steps
        for s in entry.stages
    )


def crystal_errors(gpaw, formula: str, models: dict, liquid: list[LabelledFrame], folder: Path):
    """Pressure error and (crystal − liquid) energy error per atom of each model on the crystal."""
    from pymatgen.core import Lattice

    group, parameters, species, coords = CRYSTALS[formula]
    lattice = Lattice.from_parameters(*parameters)
    crystal = Structure.from_spacegroup(group, lattice, species, coords)
    (label,) = labelled(gpaw, [crystal], folder / "crystal", "crystal")
    rows = {}
    for name, model in models.items():
        points = model.predict_structure(
            [crystal] + [f.structure for f in liquid], task="efs", batch_size=4
        )
        e_liquid_model = np.mean([float(p["e"]) for p in points[1:]])
        e_liquid_dft = np.mean([f.energy_eV / len(f.structure) for f in liquid])
        rows[name] = {
            "dP_GPa": -np.trace(points[0]["s"]) / 3 - label.pressure_GPa,
            "d_crystal_minus_liquid_eV_per_atom": (float(points[0]["e"]) - e_liquid_model)
            - (label.energy_eV / len(crystal) - e_liquid_dft),
        }
    return rows


def bench(formula: str, args, gpaw, folder: Path) -> dict:
    """One composition: label, tune, test, rerun the protocol, check the crystal."""
    stock_stage = chgnet_stage(formula, args)
    n_atoms = stock_stage.doc.n_atoms
    v_aimd = aimd_volumes()[formula] * n_atoms
    trajectories = {
        "aimd": nvt_trajectory(  # bench_dft_audit.py's run
            stock_stage.doc.structure,
            v_aimd,
            args,
            folder.parents[1] / "bench" / formula / "nvt_aimd",
        ),
        "chgnet": stock_stage.trajectory(),
    }
    train, test = [], {}
    for where, trajectory in trajectories.items():
        a, b = split(trajectory, args.train, args.test)
        train += labelled(gpaw, a, folder / f"train_{where}", f"{formula} {where} train")
        test[where] = labelled(gpaw, b, folder / f"test_{where}", f"{formula} {where} test")
    grid = (
        list(itertools.product(args.sweep_freeze, args.sweep_stress_weights, args.sweep_anchors))
        if args.sweep
        else [(args.freeze, args.stress_weight, args.anchor)]
    )
    all_test = [f for frames in test.values() for f in frames]
    stock = load_chgnet_model(EngineSpec("chgnet"))
    candidates, sweep = [], []
    for freeze, weight, anchor in grid:
        settings = TuneSettings(
            freeze=freeze,
            stress_weight=weight,
            anchor=anchor,
            epochs=args.epochs,
            learning_rate=args.lr,
        )
        path, provenance = tuned(train, settings, folder / "models")
        metrics = provenance["metrics_held_out"]["tuned"]
        candidates.append((settings, path, metrics))
        if args.sweep:  # what each choice does on the test frames and the crystal, for the record
            model = load_chgnet_model(EngineSpec("chgnet", model=str(path)))
            on_test = frame_errors(model, all_test)
            crystal = (
                crystal_errors(gpaw, formula, {"tuned": model}, all_test, folder)["tuned"]["dP_GPa"]
                if formula in CRYSTALS
                else np.nan
            )
            print(
                f"SWEEP {formula} freeze={freeze} stress_weight={weight:g} anchor={anchor:g}: "
                f"validation ΔP {metrics['pressure_difference_GPa']:+.2f}, test ΔP "
                f"{on_test['pressure_difference_GPa']:+.2f} ± "
                f"{on_test['pressure_difference_sem_GPa']:.2f}, test F RMSE "
                f"{on_test['force_rmse_eV_A']:.3f}, crystal ΔP {crystal:+.2f}, "
                f"{provenance['epochs_run']} epochs",
                flush=True,
            )
            sweep.append(
                {"freeze": freeze, "stress_weight": weight, "anchor": anchor, "validation": metrics,
                 "test": on_test, "crystal_dP_GPa": crystal, "epochs": provenance["epochs_run"]}
            )  # fmt: skip
    if args.sweep:
        return {"formula": formula, "sweep": sweep}
    # chosen by the trainer's validation frames (part of the training set), never the test frames
    settings, path, _ = min(
        candidates,
        key=lambda c: abs(c[2]["pressure_difference_GPa"]) + c[2]["force_rmse_eV_A"],
    )
    models = {"stock": stock, "tuned": load_chgnet_model(EngineSpec("chgnet", model=str(path)))}
    entries = {
        "stock": protocol_entry(formula, args, EngineSpec("chgnet"), Outputs(args.outputs)),
        "tuned": tuned_protocol(formula, args, path),
    }
    tuning_seconds = [read_provenance(path, "chgnet").get("training_seconds", np.nan)]
    for round_ in range(2, args.rounds + 1):  # the loop's next round: DFT on the model's own MD
        stage = stage_at(list(entries.values())[-1])
        train += labelled(
            gpaw, frames_at(stage.trajectory(), args.train), folder / f"train_{path.name}",
            f"{formula} {path.name} train",
        )  # fmt: skip
        path, provenance = tuned(train, settings, folder / "models", f"-round{round_}")
        tuning_seconds.append(provenance.get("training_seconds", np.nan))
        models[f"round{round_}"] = load_chgnet_model(EngineSpec("chgnet", model=str(path)))
        entries[f"round{round_}"] = tuned_protocol(formula, args, path)
    row = {"formula": formula, "atoms": n_atoms, "freeze": settings.freeze}
    row |= {"stress_weight": settings.stress_weight, "anchor": settings.anchor}
    row["models"] = list(models)
    row["dft_points"] = len(train) + len(all_test) + 1
    row["dft_cpu_min"] = sum(f.source["s"] for f in train + all_test) * args.ranks / 60
    row["tuning_cpu_min"] = sum(tuning_seconds) / 60
    volumes = [frames[0].structure.volume / n_atoms for frames in test.values()]
    p_dft = [np.mean([f.pressure_GPa for f in frames]) for frames in test.values()]
    row["V0_dft_frames"] = zero_volume(volumes[0], p_dft[0], volumes[1], p_dft[1])
    for name, model in models.items():
        row[name] = frame_errors(model, all_test)
        errors = [frame_errors(model, frames) for frames in test.values()]
        p = [p + e["pressure_difference_GPa"] for p, e in zip(p_dft, errors, strict=True)]
        row[f"V0_{name}_frames"] = v0 = zero_volume(volumes[0], p[0], volumes[1], p[1])
        # its error from the paired differences' standard errors at each volume (linear)
        sensitivity = [
            (zero_volume(volumes[0], p[0] + h0, volumes[1], p[1] + h1) - v0) / 0.01
            for h0, h1 in ((0.01, 0), (0, 0.01))
        ]
        sems = [e["pressure_difference_sem_GPa"] for e in errors]
        row[f"V0_{name}_frames_se"] = float(np.hypot(*np.multiply(sensitivity, sems)))
    for name, entry in entries.items():
        stage = stage_at(entry)
        row[f"V_{name}_protocol"] = stage.doc.volume_per_atom_A3
        li = stage.doc.diffusivity.get("Li")
        row[f"D_Li_{name}"] = None if li is None else (li.D_cm2_s, li.D_sigma_cm2_s)
    steps = md_steps(entries["stock"], args)
    seconds = np.mean([f.source["s"] for f in train + all_test])
    row["dft_only_md_steps"] = steps
    row["dft_only_cpu_min"] = steps * seconds * STEP_PER_POINT * args.ranks / 60
    if formula in CRYSTALS:
        row["crystal"] = crystal_errors(gpaw, formula, models, all_test, folder)
    return row


def tuned_protocol(formula: str, args, path: Path):
    """The protocol's entry with the tuned model ``path`` (stored beside the others)."""
    outputs = Outputs(Path(args.outputs) / "tuned" / path.name)
    return protocol_entry(formula, args, EngineSpec("chgnet", model=str(path)), outputs)


def main() -> None:
    """Run the benchmark and print its table and JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_liquid_arguments(parser)
    parser.add_argument("--train", type=int, default=4, help="training frames per volume")
    parser.add_argument("--test", type=int, default=2, help="test frames per volume")
    parser.add_argument("--freeze", default=TuneSettings.freeze, choices=sorted(FREEZE))
    parser.add_argument("--stress-weight", type=float, default=TuneSettings.stress_weight)
    parser.add_argument("--epochs", type=int, default=TuneSettings.epochs)
    parser.add_argument("--lr", type=float, default=TuneSettings.learning_rate)
    parser.add_argument("--anchor", type=float, default=TuneSettings.anchor)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="tunings: each after the first adds --train DFT frames of the last model's own run",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="tune with every freeze × stress weight × anchor listed and report each on the test "
        "frames and the crystal (no protocol runs)",
    )
    parser.add_argument("--sweep-freeze", nargs="+", default=sorted(FREEZE), choices=sorted(FREEZE))
    parser.add_argument("--sweep-stress-weights", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--sweep-anchors", type=float, nargs="+", default=[0.0])
    args = parser.parse_args()
    folder = Path(args.outputs).resolve() / "bench_tune"
    gpaw = EngineSpec("gpaw", options=gpaw_options(args)).load()
    rows = [bench(f, args, gpaw, folder / f) for f in args.compositions]
    if args.sweep:
        print(json.dumps({"sweep": rows, "conditions": conditions(args)}, default=float))
        return
    print(
        f"\n{'formula':8} {'model':6} {'ΔP to PBE (test)':>17} {'F RMSE':>7} {'E spread':>9} "
        f"{'V0 frames':>14} {'V0 PBE':>7} {'V protocol':>10} {'D(Li) cm²/s':>18}"
    )
    for r in rows:
        for name in r["models"]:
            m, d = r[name], r[f"D_Li_{name}"]
            print(
                f"{r['formula']:8} {name:6} {m['pressure_difference_GPa']:+8.2f} ± "
                f"{m['pressure_difference_sem_GPa']:5.2f} {m['force_rmse_eV_A']:7.3f} "
                f"{m['energy_spread_eV_per_atom']:9.4f} {r[f'V0_{name}_frames']:7.2f} ± "
                f"{r[f'V0_{name}_frames_se']:4.2f} "
                f"{r['V0_dft_frames']:7.2f} {r[f'V_{name}_protocol']:10.2f} "
                + ("-" if d is None else f"{d[0]:.2e} ± {d[1]:.1e}")
            )
        print(
            f"{'':8} cost: {r['dft_points']} DFT points, {r['dft_cpu_min']:.0f} CPU min, tuning "
            f"{r['tuning_cpu_min']:.0f} min; a "
            f"DFT-only protocol ~{r['dft_only_cpu_min']:.0f} CPU min ({r['dft_only_md_steps']} "
            "steps)"
        )
    measured = conditions(args, train_per_volume=args.train, test_per_volume=args.test)
    print(json.dumps({"rows": rows, "conditions": measured}, default=float))


if __name__ == "__main__":
    main()
