"""Sub-commands of the ``amorph`` command line: argument parsing and printing only.

Each module has ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit code; heavy imports (torch, jobflow) happen inside
``func`` so that light commands start fast. Options shared by several commands are defined here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from amorph.errors import InputError


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more")
        return value

    return parse


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--outputs`` and ``--store``, accepted the same way by every command that uses the store."""
    parser.add_argument(
        "--outputs",
        default="outputs",
        metavar="DIR",
        help="folder of the embedded store (DIR/store), MD runs and exports (default: outputs)",
    )
    parser.add_argument(
        "--store",
        metavar="FILE",
        help="a jobflow store file or a jobflow-remote project file (e.g. MongoDB) to use instead "
        "of the embedded store",
    )


def add_featurise_options(parser: argparse.ArgumentParser, frames: int = 0) -> None:
    """``--frames``, ``--jobs`` and ``--include-unconverged``: how results are featurised."""
    parser.add_argument(
        "--frames",
        type=int_at_least(0),
        default=frames,
        help=f"average the features over this many evenly spaced trajectory frames (default "
        f"{frames}; 0: a stored result's last frame; a bare .npz input uses at least 1, the last)",
    )
    parser.add_argument(
        "--jobs",
        type=int_at_least(1),
        default=1,
        help="processes sharing a trajectory's frames (default 1)",
    )
    parser.add_argument(
        "--include-unconverged",
        action="store_true",
        help="keep stored results whose volume search did not converge",
    )


def add_engine_options(
    parser: argparse.ArgumentParser, role: str = "the MD", default: str = "chgnet"
) -> None:
    """``--engine``, ``--engine-option``, ``--model``, ``--device`` and ``--compile``."""
    parser.add_argument(
        "--engine",
        default=default,
        help=f"engine of {role} (default {default}): chgnet, m3gnet, sevennet, their -ase "
        "variants, gpaw, vasp, or package.module:function returning an ASE calculator",
    )
    parser.add_argument(
        "--engine-option",
        action="append",
        default=[],
        type=engine_option,
        metavar="KEY=VALUE",
        help="an option of the engine (repeatable; VALUE read as JSON where it parses, e.g. "
        "cutoff_eV=600, kpoints=[2,2,2], ranks=4; gpaw's and vasp's are in the README)",
    )
    parser.add_argument("--model", help="pretrained model name or local model path of the engine")
    parser.add_argument("--device", default="cpu", help="torch device of ML potentials (cpu)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="chgnet: torch.compile its interaction blocks, ~1.3x faster steps after a first "
        "evaluation that compiles for a minute or more (for long runs)",
    )


def add_audit_options(parser: argparse.ArgumentParser) -> None:
    """``--audit``, ``--audit-option``, ``--audit-frames`` and ``--audit-frames-per-job``: a DFT
    audit of every stage (``run``, ``campaign``, ``submit``)."""
    parser.add_argument(
        "--audit",
        metavar="ENGINE",
        help="DFT engine (gpaw, or vasp on clusters) that audits every stage as it ends: single "
        "points on frames of its production run beside the MD engine's (default: no audit)",
    )
    parser.add_argument(
        "--audit-option",
        action="append",
        default=[],
        type=engine_option,
        metavar="KEY=VALUE",
        help="an option of the audit's engine (as --engine-option)",
    )
    parser.add_argument(
        "--audit-frames", type=int_at_least(2), default=8, help="frames per audit (default 8)"
    )
    parser.add_argument(
        "--audit-frames-per-job",
        type=int_at_least(1),
        default=1,
        help="DFT frames per job (default 1: each frame its own job, in parallel on a cluster)",
    )


def audit_maker(engine: str, options: list[tuple[str, Any]], frames: int, per_job: int):
    """The :class:`~amorph.flows.audit.AuditMaker` of a DFT engine name and its options."""
    from amorph.flows.audit import AuditMaker
    from amorph.md.engine import EngineSpec

    spec = EngineSpec.parse(engine)
    spec.options.update(options)
    return AuditMaker(engine=spec, frames=frames, frames_per_job=per_job)


def engine_option(text: str) -> tuple[str, Any]:
    """An argparse type: ``KEY=VALUE`` with VALUE as JSON where it parses, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def engine_spec(args: argparse.Namespace):
    """The :class:`~amorph.md.engine.EngineSpec` of ``--engine``/``--model``/``--device``/
    ``--compile``."""
    from amorph.md.engine import EngineSpec

    spec = EngineSpec.parse(args.engine, model=args.model, device=args.device)
    spec.options.update(args.engine_option)
    if args.compile:
        if spec.kind != "chgnet":
            raise InputError(f"--compile works with the chgnet engine, not {spec.kind!r}")
        spec.options["compile"] = True
    return spec
