r"""Benchmark: how close the surrogate databases are to the AIMD one (Zheng et al. 2024).

For every reference composition and temperature of ``../shared/data/aimd_reference`` the protocol is
run with each engine (melt at 5000 K, quench to the reference temperatures; the RDF compositions
only melt), then compared with the AIMD numbers: volume per atom (%), D(Li) (ratio), partial-RDF
R² against the AIMD and against the paper's M3GNet RDFs, the pressure the engine's own P(V) fit
gives at the AIMD volume, and the volume shift the second opinion (another potential on the same
frames) implies. One table at the end; the results stay in the store under
``--outputs``, so a rerun reuses finished MD and ``amorph compare`` can look at any of them.

    python scripts/bench_fidelity.py --engines chgnet        # about 1 h on a 2-core CPU
    python scripts/bench_fidelity.py --preset paper --atoms 100 --eos-ps 4 --check-ps 4 \
        --production-ps 20                                     # the paper's protocol (a GPU)

The defaults (32 atoms, 0.3 ps volume-search and check runs, 1 ps production, the demo preset's
20 fs thermostat) are short, so volumes and diffusivities are noisier than with the paper's
protocol. SevenNet-0 costs about 4 times CHGNet per step on a CPU.
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from collections import defaultdict
from pathlib import Path

from amorph.analysis.compare import compare, read_reference
from amorph.flows.presets import protocol_maker
from amorph.managers.local import run_flow
from amorph.md.engine import EngineSpec
from amorph.results.outputs import Outputs
from amorph.results.reader import Database
from amorph.results.store import open_store
from amorph.volume.eos import EOSFit

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "aimd_reference"
MELT_K = 5000.0


def groups(reference_dir: Path) -> dict[tuple[float, ...], list[str]]:
    """Compositions by the temperatures they need (the melt first)."""
    temperatures = defaultdict(set)
    with open(reference_dir / "multi_temperature.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            temperatures[row["formula"]].add(float(row["temperature_K"]))
    for path in sorted((reference_dir / "rdf_5000K").glob("DFT_RDF_*.csv")):
        temperatures.setdefault(path.stem.split("_")[-1], set())
    by_set = defaultdict(list)
    for formula, ts in temperatures.items():
        by_set[(MELT_K, *sorted(ts, reverse=True))].append(formula)
    return dict(by_set)


def run_engine(engine: str, args: argparse.Namespace, plan: dict, outputs: Path) -> float:
    """Run every group with ``engine`` into the store; return the wall time in s."""
    start = time.perf_counter()
    store = open_store(None, outputs)
    for temperatures, formulas in plan.items():
        maker = protocol_maker(
            args.preset,
            engine=EngineSpec.parse(engine),
            temperatures=list(temperatures),
            atoms=args.atoms,
            eos_ps=args.eos_ps,
            check_ps=args.check_ps,
            production_ps=args.production_ps,
            chunk_ps=args.production_ps / 2,
            run_dir=str((outputs / "runs" / engine).resolve()),
        )
        print(f"{engine}: {' '.join(formulas)} at {' '.join(f'{t:.0f}' for t in temperatures)} K")
        run_flow(maker.make_batch(formulas), store, Outputs(outputs))
    return time.perf_counter() - start


def table(database: Database, engines: list[str], reference_dir: Path) -> list[dict]:
    """One row per composition, temperature and engine."""
    files = [reference_dir / "multi_temperature.csv", *sorted(reference_dir.glob("rdf_5000K/*"))]
    reference = read_reference(files)
    rows = []
    for entry in database.compositions():
        if entry.doc.engine not in engines:
            continue
        comparison = compare([s.summary for s in entry.stages], reference, entry.formula)
        fits = {s.doc.temperature_K: s.doc.eos.fit for s in entry.stages}
        for t in comparison.as_dict()["temperatures"]:
            row = {"formula": entry.formula, "T_K": t["temperature_K"], "engine": entry.doc.engine}
            if t.get("reference_volume_per_atom_A3") is not None:
                fit = EOSFit(**fits[t["temperature_K"]].model_dump())
                n_atoms = next(
                    s.doc.n_atoms for s in entry.stages if s.doc.temperature_K == t["temperature_K"]
                )
                volume = t["reference_volume_per_atom_A3"] * n_atoms
                row["P_at_V_AIMD_GPa"] = float(fit.pressure(volume))
            row |= {k: t[k] for k in COLUMNS}
            for d in t["diffusivity"]:
                if d["species"] == "Li":
                    row |= {"D_ratio": d["ratio"], "D_ratio_sigma": d["ratio_sigma"],
                            "diffusive": d["diffusive"]}  # fmt: skip
            for rdf in t["rdf"]:
                row[f"R2_{rdf['label']}"] = rdf["pooled_r2"]
            stage = next(s.doc for s in entry.stages if s.doc.temperature_K == t["temperature_K"])
            if stage.second_opinion is not None:
                row[f"dV_{stage.second_opinion.engine}_pct"] = (
                    100 * stage.second_opinion.volume_shift
                )
            rows.append(row)
    return rows


COLUMNS = ("volume_per_atom_A3", "reference_volume_per_atom_A3", "volume_error_pct")


def print_table(rows: list[dict]) -> None:
    """Print ``rows`` as right-aligned columns, floats to four significant digits."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(" ".join(f"{c:>14}" for c in columns))
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            cells.append(f"{v:>14.4g}" if isinstance(v, float) else f"{v!s:>14}")
        print(" ".join(cells))


def main() -> None:
    """Run each engine's protocol on the reference compositions, then print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["chgnet", "sevennet"])
    parser.add_argument(
        "--preset",
        choices=("demo", "paper"),
        default="demo",
        help="base protocol: demo (20 fs thermostat, for short runs; default) or paper",
    )
    parser.add_argument("--atoms", type=int, default=32)
    parser.add_argument("--eos-ps", type=float, default=0.3)
    parser.add_argument("--check-ps", type=float, default=0.3)
    parser.add_argument("--production-ps", type=float, default=1.0)
    parser.add_argument("--outputs", type=Path, default=Path("bench_outputs/fidelity"))
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE)
    parser.add_argument("--only", nargs="+", metavar="FORMULA", help="these compositions only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    plan = groups(args.reference_dir)
    if args.only:
        plan = {ts: [f for f in fs if f in args.only] for ts, fs in plan.items()}
        plan = {ts: fs for ts, fs in plan.items() if fs}
    for engine in args.engines:
        wall = run_engine(engine, args, plan, args.outputs)
        print(f"{engine}: {wall / 60:.1f} min")
    database = Database.open(Outputs(args.outputs))
    print_table(table(database, args.engines, args.reference_dir))


if __name__ == "__main__":
    main()
