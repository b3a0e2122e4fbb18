r"""Benchmark: force evaluations of the melt-quench protocol against its minimum, per stage.

The cost of a database is (MD steps) × (atoms) summed over every run. The protocol's minimum per
temperature is the first round of volume-search runs, one check run and the production run. This
script runs the protocol for several compositions (one batched flow per seed), then reads each
stage's document and counts atom-steps per kind of run:

- ``eos``: the first round of volume-search runs (0.8/1.0/1.2 × the centre volume);
- ``extra V``: volumes added until zero pressure was bracketed;
- ``check``: the first check run; ``extra check``: the runs after it (extensions or rescaled
  volumes);
- ``production``.

It prints one row per composition, temperature and seed (atom-steps ÷ minimum, whether the stage
converged, the pressure ± standard error of its last check run and of its production run), the
totals, and the wall time of each flow.

    python scripts/bench_protocol.py                       # demo preset, seeds 1 2 3
    python scripts/bench_protocol.py --preset paper --atoms 48 --eos-ps 0.5 --check-ps 0.5 \
        --production-ps 1 --temperatures 5000 2000 --seeds 1   # a shortened paper protocol
    python scripts/bench_protocol.py --report                 # the table of an earlier run

The second opinion is off: it is not part of the protocol's MD. ``--outputs`` keeps each seed's
store and MD files, so a rerun reuses finished runs.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict
from pathlib import Path

from amorph.flows.presets import protocol_maker
from amorph.flows.stage import steps_for
from amorph.managers.local import run_flow
from amorph.results.outputs import Outputs
from amorph.results.reader import Database
from amorph.results.store import open_store
from amorph.structure.composition import parse_composition

COMPOSITIONS = ("Li2O", "LiCuSi2", "Li3PS4", "LiAlO2", "Li3N")
KINDS = ("eos", "extra V", "check", "extra check", "production")


def atom_steps(maker, doc) -> dict[str, int]:
    """Atom-steps per kind of run of one stage, from its document."""
    stage, composition = maker.stage, parse_composition(doc.formula)

    def steps(md_maker) -> int:
        return steps_for(md_maker.duration_ps, md_maker.md, composition) * doc.n_atoms

    first = len(stage.volume_search.volume_factors)
    return {
        "eos": first * steps(stage.volume_search),
        "extra V": (len(doc.eos.points) - first) * steps(stage.volume_search),
        "check": steps(stage.check),
        "extra check": (len(doc.check.runs) - 1) * steps(stage.check),
        "production": doc.production_steps * doc.n_atoms,
    }


def seed_maker(args: argparse.Namespace, seed: int, outputs: Path):
    """The ``--preset`` protocol with the size options and ``seed``, MD under
    ``outputs/runs/seed<seed>``, no second opinion."""
    return protocol_maker(
        args.preset,
        seed=seed,
        temperatures=args.temperatures,
        atoms=args.atoms,
        eos_ps=args.eos_ps,
        check_ps=args.check_ps,
        production_ps=args.production_ps,
        run_dir=str((outputs / "runs" / f"seed{seed}").resolve()),
        second_opinion="none",
    )


def rows_of(maker, database: Database, seed: int) -> list[dict]:
    """One row per stage in ``database``."""
    rows = []
    for entry in database.compositions():
        for stage in entry.stages:
            doc = stage.doc
            counts = atom_steps(maker, doc)
            least = counts["eos"] + counts["check"] + counts["production"]
            rows.append(
                {
                    "formula": entry.formula,
                    "T_K": doc.temperature_K,
                    "seed": seed,
                    **counts,
                    "total": sum(counts.values()),
                    "minimum": least,
                    "ratio": sum(counts.values()) / least,
                    "converged": doc.converged,
                    "check_P_GPa": doc.check.runs[-1].pressure_GPa,
                    "check_P_sem_GPa": doc.check.runs[-1].pressure_sem_GPa,
                    "P_GPa": doc.pressure_GPa,
                    "P_sem_GPa": doc.pressure_sem_GPa,
                }
            )
    return rows


def run_seed(args: argparse.Namespace, seed: int, outputs: Path) -> tuple[list[dict], float]:
    """Run every composition with ``seed`` as one batched flow; its rows and wall time in s."""
    maker = seed_maker(args, seed, outputs)
    store = open_store(None, outputs / f"seed{seed}")
    start = time.perf_counter()
    run_flow(maker.make_batch(args.compositions), store, Outputs(outputs / f"seed{seed}"))
    return rows_of(maker, Database(store), seed), time.perf_counter() - start


def print_rows(rows: list[dict], walls: dict[int, float]) -> None:
    """Print one line per stage, then atom-steps over the minimum per temperature and in all, and
    the wall times."""
    header = f"{'formula':>8} {'T (K)':>6} {'seed':>4} " + " ".join(f"{k:>11}" for k in KINDS)
    print(header + f" {'total/min':>9} {'conv':>5} {'check P ± SE':>14} {'prod. P ± SE':>14}")
    for r in sorted(rows, key=lambda r: (r["formula"], -r["T_K"], r["seed"])):
        cells = " ".join(f"{r[k]:>11d}" for k in KINDS)
        check = f"{r['check_P_GPa']:+.2f} ± {r['check_P_sem_GPa']:.2f}"
        pressure = f"{r['P_GPa']:+.2f} ± {r['P_sem_GPa']:.2f}"
        print(
            f"{r['formula']:>8} {r['T_K']:>6.0f} {r['seed']:>4} {cells} {r['ratio']:>9.2f} "
            f"{'yes' if r['converged'] else 'NO':>5} {check:>14} {pressure:>14}"
        )
    by_temperature = defaultdict(lambda: [0, 0])
    for r in rows:
        by_temperature[r["T_K"]][0] += r["total"]
        by_temperature[r["T_K"]][1] += r["minimum"]
    for t, (total, least) in sorted(by_temperature.items(), reverse=True):
        print(f"{t:.0f} K: atom-steps / minimum = {total / least:.2f}")
    total = sum(r["total"] for r in rows)
    least = sum(r["minimum"] for r in rows)
    kinds = ", ".join(f"{k} {sum(r[k] for r in rows) / least:.2f}" for k in KINDS)
    converged = sum(r["converged"] for r in rows)
    print(f"all: atom-steps / minimum = {total / least:.2f} ({kinds})")
    print(f"converged stages: {converged} of {len(rows)}")
    for seed, wall in walls.items():
        print(f"seed {seed}: wall time {wall:.0f} s for {len({r['formula'] for r in rows})} "
              "compositions in one batched flow")  # fmt: skip


def main() -> None:
    """Run (or with ``--report`` only read) every seed's flow; print the rows, and write them with
    ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compositions", nargs="+", default=list(COMPOSITIONS))
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--temperatures", nargs="+", type=float)
    parser.add_argument("--atoms", type=int)
    parser.add_argument("--eos-ps", type=float)
    parser.add_argument("--check-ps", type=float)
    parser.add_argument("--production-ps", type=float)
    parser.add_argument("--outputs", type=Path, default=Path("bench_protocol"))
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--report", action="store_true", help="only read the stores of an earlier run"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows, walls = [], {}
    for seed in args.seeds:
        if args.report:
            database = Database.open(Outputs(args.outputs / f"seed{seed}"))
            rows += rows_of(seed_maker(args, seed, args.outputs), database, seed)
            continue
        seed_rows, walls[seed] = run_seed(args, seed, args.outputs)
        rows += seed_rows
        print(f"seed {seed} done in {walls[seed]:.0f} s", flush=True)
    print_rows(rows, walls)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "wall_s": walls}, indent=1))


if __name__ == "__main__":
    main()
