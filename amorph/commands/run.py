"""``amorph run FORMULA``: the melt-quench flow of one composition, run here, into the store.

The results go to the store (by default the embedded one in ``outputs/store``) and are then
exported from it to ``outputs/results/<formula>/`` (files and plots); ``amorph db`` reads them back.
"""

from __future__ import annotations

import argparse
import sys

from amorph.commands import (
    add_audit_options,
    add_engine_options,
    add_store_options,
    audit_maker,
    engine_spec,
    int_at_least,
)
from amorph.errors import InputError
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "run", help="melt-quench one composition here, into the store", description=__doc__
    )
    parser.add_argument("formula", help="composition, e.g. Li2SiO3")
    add_protocol_options(parser)
    parser.add_argument("--json", action="store_true", help="print the stage documents as JSON")
    parser.set_defaults(func=run)


def add_protocol_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``run``, ``campaign`` and ``submit``: protocol, engine and where outputs go."""
    parser.add_argument(
        "--preset",
        choices=("paper", "demo"),
        default="paper",
        help="paper protocol (default) or a small, short demo",
    )
    add_engine_options(parser)
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        metavar="K",
        help="melt temperature then quench temperatures (default 5000 2500 2000 1500 1000)",
    )
    parser.add_argument("--atoms", type=int, help="about this many atoms (whole formula units)")
    parser.add_argument("--seed", type=int, help="seed of packing and velocities (default 1)")
    parser.add_argument(
        "--volume-per-atom", type=float, help="starting volume per atom in Å³ (default: estimate)"
    )
    parser.add_argument(
        "--min-distance", type=float, help="smallest interatomic distance of the packing in Å"
    )
    parser.add_argument(
        "--pressure-convention",
        choices=("virial", "total"),
        help="virial (paper, VASP external pressure) or total (adds N k T / V)",
    )
    parser.add_argument("--eos-ps", type=float, help="length of each volume-search run in ps")
    parser.add_argument("--check-ps", type=float, help="length of each check run in ps")
    parser.add_argument("--production-ps", type=float, help="length of the production run in ps")
    parser.add_argument("--chunk-ps", type=float, help="production checkpoint interval in ps")
    parser.add_argument(
        "--second-opinion",
        default="auto",
        metavar="ENGINE",
        help="second potential that evaluates frames of every production run: auto (default: "
        "SevenNet-0 for CHGNet/M3GNet, CHGNet for SevenNet/VASP), none, or an engine",
    )
    add_audit_options(parser)
    parser.add_argument(
        "--tune-with",
        metavar="ENGINE",
        help="DFT engine (gpaw, vasp) of the audit/tune loop: audit every stage, tune CHGNet on "
        "the audits' frames and run again while an audit disagrees (--audit-* options apply)",
    )
    parser.add_argument(
        "--tune-rounds",
        type=int_at_least(1),
        default=2,
        help="most tunings of the --tune-with loop (default 2)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even when the estimate made first says the run needs more memory than this "
        "machine has or more than 1e9 atom-steps of MD",
    )
    add_store_options(parser)
    parser.add_argument(
        "--trajectory-in-store",
        action="store_true",
        help="also put production trajectories into the store's data store (always with "
        "--store: e.g. GridFS on MongoDB, so that any machine reading the store finds them)",
    )


def protocol(args: argparse.Namespace, run_dir: str | None, models_dir: str | None = None):
    """The :class:`~amorph.flows.MeltQuenchMaker` the options describe; ``models_dir``: where the
    audit/tune loop's models go (None: each tune job's folder)."""
    from amorph.flows.presets import protocol_maker
    from amorph.flows.tune import TuneLoop

    if args.tune_with and args.audit not in (None, args.tune_with):
        raise InputError(f"--audit {args.audit} and --tune-with {args.tune_with}: choose one")
    audit = args.tune_with or args.audit

    return protocol_maker(
        args.preset,
        engine=engine_spec(args),
        seed=args.seed,
        temperatures=args.temperatures,
        atoms=args.atoms,
        volume_per_atom=args.volume_per_atom,
        min_distance=args.min_distance,
        pressure_convention=args.pressure_convention,
        eos_ps=args.eos_ps,
        check_ps=args.check_ps,
        production_ps=args.production_ps,
        chunk_ps=args.chunk_ps,
        run_dir=run_dir,
        store_trajectory=args.trajectory_in_store or bool(args.store) or None,
        second_opinion=args.second_opinion,
        audit=None
        if audit is None
        else audit_maker(audit, args.audit_option, args.audit_frames, args.audit_frames_per_job),
        tune=TuneLoop(rounds=args.tune_rounds, models_dir=models_dir) if args.tune_with else None,
    )


def run(args: argparse.Namespace) -> int:
    """Melt-quench the composition into the store and print its stages (or JSON)."""
    from amorph.commands.tables import print_stages, print_tuning
    from amorph.managers.local import run_composition
    from amorph.results.outputs import Outputs
    from amorph.results.reader import Database
    from amorph.structure.composition import parse_composition

    outputs = Outputs(args.outputs, args.store)
    composition = parse_composition(args.formula, whole=True)
    models = str(outputs.root / "models") if args.tune_with else None
    maker = protocol(args, run_dir=str(outputs.runs), models_dir=models)
    entry = run_composition(maker, composition, outputs, force=args.force, log=args.verbose)
    if args.tune_with:
        print_tuning(Database.open(outputs).tuning(composition.reduced_formula), sys.stderr)
    if args.json:
        print(json_text([stage.summary for stage in entry.stages]))
    else:
        print_stages(entry.stages)
    return 0
