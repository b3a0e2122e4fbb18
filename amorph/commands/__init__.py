"""Sub-commands of the ``amorph`` command line: argument parsing and printing only.

Each module has ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit code; heavy imports (torch, jobflow) happen inside
``func`` so that light commands start fast. Options shared by several commands are defined here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

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


def add_engine_options(parser: argparse.ArgumentParser, role: str = "the MD") -> None:
    """``--engine``, ``--model`` and ``--device``."""
    parser.add_argument(
        "--engine",
        default="chgnet",
        help=f"engine of {role}: chgnet (default), m3gnet, sevennet, their -ase variants, vasp, "
        "or package.module:function returning an ASE calculator",
    )
    parser.add_argument("--model", help="pretrained model name or local model path of the engine")
    parser.add_argument("--device", default="cpu", help="torch device of ML potentials (cpu)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="chgnet: torch.compile its interaction blocks, ~1.3x faster steps after a first "
        "evaluation that compiles for a minute or more (for long runs)",
    )


def engine_spec(args: argparse.Namespace):
    """The :class:`~amorph.md.engine.EngineSpec` of ``--engine``/``--model``/``--device``/
    ``--compile``."""
    from amorph.md.engine import EngineSpec

    spec = EngineSpec.parse(args.engine, model=args.model, device=args.device)
    if args.compile:
        if spec.kind != "chgnet":
            raise InputError(f"--compile works with the chgnet engine, not {spec.kind!r}")
        spec.options["compile"] = True
    return spec
