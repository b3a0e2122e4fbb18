"""Benchmark: per-step MD time of SevenNet batched (``sevennet``), SevenNet's ASE calculator
(``sevennet-ase``) and batched CHGNet (``chgnet``) on the same packmol cell, in one process.

    python scripts/bench_sevennet.py                     # Li2O, ~100 atoms, 3 steps, CPU
    python scripts/bench_sevennet.py --device cuda --replicas 8

Each engine runs ``--steps`` NVT steps of one replica (and of ``--replicas`` replicas in one batch
for the batched engines) ``--repeats`` times, alternating with the others so that other load on the
machine hits all of them alike; the fastest run counts. Printed: wall and CPU (process) ms per step,
and their ratios to ``sevennet``; on a shared machine the CPU times are the steadier.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch

from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.structure.composition import formula_units_for, parse_composition
from amorph.structure.packing import random_packed_structure
from amorph.volume.estimate import estimate_volume_per_atom

KINDS = ("sevennet", "sevennet-ase", "chgnet")


def seconds_per_step(
    engine, structure, replicas: int, steps: int, root: Path
) -> tuple[float, float]:
    """Wall and CPU time per MD step (the first force evaluation counted as one) of ``replicas``."""
    settings = MDSettings(time_step_fs=1.0)
    tasks = [
        MDTask(MDState(structure), 1500.0, steps, settings, root / f"r{i}", seed=i)
        for i in range(replicas)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    engine.run(tasks)
    return (time.perf_counter() - wall) / (steps + 1), (time.process_time() - cpu) / (steps + 1)


def main() -> None:
    """Time each engine of ``KINDS`` on one packmol cell; print the best times and ratios (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formula", default="Li2O")
    parser.add_argument("--atoms", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, help="batch size of the batched engines")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)

    composition = parse_composition(args.formula)
    structure = random_packed_structure(
        composition,
        formula_units_for(composition, args.atoms),
        estimate_volume_per_atom(composition),
        seed=1,
    )
    engines = {kind: EngineSpec(kind, device=args.device).load() for kind in KINDS}
    runs = [(kind, 1) for kind in KINDS]
    if args.replicas > 1:
        runs += [(kind, args.replicas) for kind in KINDS if engines[kind].batches]
    times: dict[tuple[str, int], list[tuple[float, float]]] = {run: [] for run in runs}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind in KINDS:  # first calls allocate and fill caches
            seconds_per_step(engines[kind], structure, 1, 1, root / f"warm-{kind}")
        for repeat in range(args.repeats):
            for kind, n in runs:
                where = root / f"{kind}-{n}-{repeat}"
                times[kind, n].append(
                    seconds_per_step(engines[kind], structure, n, args.steps, where)
                )
    report = {
        "formula": args.formula,
        "n_atoms": len(structure),
        "device": args.device,
        "threads": args.threads,
        "steps": args.steps,
    }
    for i, clock in enumerate(("wall", "cpu")):
        best = {f"{kind} x{n}": min(t[i] for t in values) for (kind, n), values in times.items()}
        report[f"{clock}_ms_per_step"] = {run: 1000 * t for run, t in best.items()}
        report[f"{clock}_ratio_to_sevennet"] = {
            run: t / best["sevennet x1"] for run, t in best.items()
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
