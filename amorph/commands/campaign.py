"""``amorph campaign FILE``: the melt-quench flow for every composition of a file, resumable."""

from __future__ import annotations

import argparse

from amorph.commands import int_at_least
from amorph.commands.run import add_protocol_options, protocol


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``campaign`` parser, which runs :func:`campaign`."""
    parser = subparsers.add_parser(
        "campaign",
        help="run many compositions; rerun to resume",
        description=__doc__,
        epilog="The file lists one formula per line; blank lines and text after # are ignored. "
        "Finished compositions are skipped on a rerun; failed ones are recorded with their "
        "reason (outputs/campaign.json) and retried.",
    )
    parser.add_argument("file", help="text file of formulas")
    add_protocol_options(parser)
    parser.add_argument(
        "--executor",
        choices=("local", "dask", "slurm"),
        default="local",
        help="run compositions one after another (local), on a local Dask cluster (dask), or on "
        "Dask workers submitted as SLURM jobs (slurm, needs dask-jobqueue)",
    )
    parser.add_argument(
        "--workers", type=int_at_least(1), default=2, help="Dask workers (default 2)"
    )
    parser.add_argument(
        "--batch",
        type=int_at_least(1),
        default=1,
        help="compositions per flow; with a batched engine (chgnet, m3gnet) their MD runs go to "
        "the model together (default 1)",
    )
    slurm = parser.add_argument_group("SLURM workers (--executor slurm)")
    slurm.add_argument("--slurm-partition", metavar="NAME", help="partition (queue) of the workers")
    slurm.add_argument("--slurm-walltime", default="24:00:00", help="time limit of each worker")
    slurm.add_argument("--slurm-memory", default="4GB", help="memory of each worker (default 4GB)")
    slurm.add_argument("--slurm-account", metavar="NAME", help="account to charge")
    parser.set_defaults(func=campaign)


def campaign(args: argparse.Namespace) -> int:
    """Run the file's compositions; print how many are done, why others failed (then 1)."""
    from amorph.managers.campaign import read_compositions, run_campaign
    from amorph.results.outputs import Outputs

    outputs = Outputs(args.outputs, args.store)
    spellings = read_compositions(args.file)
    for formula, found in spellings.items():
        if len(found) > 1:
            print(f"{', '.join(found)}: one composition, run once as {formula}")
    slurm = {"walltime": args.slurm_walltime, "memory": args.slurm_memory}
    slurm |= {"queue": args.slurm_partition, "account": args.slurm_account}
    status = run_campaign(
        protocol(args, run_dir=str(outputs.runs), models_dir=str(outputs.root / "models")),
        list(spellings),
        outputs,
        force=args.force,
        executor=args.executor,
        workers=args.workers,
        batch=args.batch,
        slurm={k: v for k, v in slurm.items() if v is not None},
    )
    failed = {f: s for f, s in status.items() if s["status"] != "done"}
    print(f"{len(status) - len(failed)} of {len(status)} compositions done")
    for formula, s in failed.items():
        print(f"failed {formula}: {s['reason']}")
    return 1 if failed else 0
