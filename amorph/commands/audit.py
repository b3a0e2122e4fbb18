"""``amorph audit FORMULA``: DFT single points on frames of stored stages, beside their engine's.

For every stored stage of the compositions (each temperature, or those of --temperatures), frames
of its production run are computed by a DFT engine (GPAW by default) and by the stage's own engine;
the audit (pressure difference with its paired standard error, force errors, energy spread, the
volume shift DFT implies) goes into the store, where ``amorph db show`` shows it beside the stage.
"""

from __future__ import annotations

import argparse

from amorph.commands import (
    add_engine_options,
    add_store_options,
    audit_maker,
    int_at_least,
)
from amorph.errors import InputError
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "audit", help="DFT single points on frames of stored stages", description=__doc__
    )
    parser.add_argument("formulas", nargs="+", metavar="FORMULA", help="stored compositions")
    add_engine_options(parser, role="the audit", default="gpaw")
    parser.add_argument(
        "--stage-engine", help="audit only the stages of this MD engine (default: every engine)"
    )
    parser.add_argument(
        "--temperatures", type=float, nargs="+", metavar="K", help="audit only these stages"
    )
    parser.add_argument(
        "--frames", type=int_at_least(2), default=8, help="frames per stage (default 8)"
    )
    parser.add_argument(
        "--frames-per-job",
        type=int_at_least(1),
        default=1,
        help="DFT frames per job (default 1: each frame its own job)",
    )
    add_store_options(parser)
    parser.add_argument("--json", action="store_true", help="print the audits as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """DFT-audit the matching stored stages and print the audits (tables or JSON)."""
    from amorph.commands.tables import print_audits
    from amorph.managers.local import audit_stages
    from amorph.results.outputs import Outputs

    maker = audit_maker(args.engine, args.engine_option, args.frames, args.frames_per_job)
    maker.validate()
    outputs = Outputs(args.outputs, args.store)
    audits = audit_stages(
        maker, args.formulas, outputs, args.stage_engine, args.temperatures, log=args.verbose
    )
    if not audits:
        raise InputError("no stored stage matches: see `amorph db list`")
    if args.json:
        print(json_text([audit.model_dump(mode="json") for audit in audits]))
    else:
        print_audits(audits)
    return 0
