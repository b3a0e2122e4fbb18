"""``amorph tune``: fine-tune CHGNet on DFT frames, from the store's audits or from files.

The frames of the audits of the given compositions (every audited stage without FORMULA), or of
--frames files (extended XYZ with energies, forces and stresses, vasprun.xml, OUTCAR), teach the
base model their energies (up to a constant per composition), forces and stresses; a share is held
out, training stops when it no longer improves on them. The result is a model directory (weights,
provenance, metrics on the held-out frames, the weights' sha256) that ``--model DIR`` loads; every
stage run with it records the hash.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from amorph.commands import add_store_options, int_at_least
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` parser, which runs :func:`run`."""
    from amorph.potentials.tuning import FREEZE, TuneSettings

    defaults = TuneSettings()
    parser = subparsers.add_parser(
        "tune", help="fine-tune CHGNet on DFT frames (audits or files)", description=__doc__
    )
    parser.add_argument(
        "formulas", nargs="*", metavar="FORMULA", help="audited compositions (default: all)"
    )
    parser.add_argument(
        "--frames", nargs="+", type=Path, metavar="FILE", help="DFT frames from files instead"
    )
    parser.add_argument(
        "--model", help="the base model: a CHGNet version or a tuned directory (default 0.3.0)"
    )
    parser.add_argument(
        "--out", type=Path, help="the new model directory (default: OUTPUTS/models/chgnet-...)"
    )
    parser.add_argument("--freeze", choices=sorted(FREEZE), default=defaults.freeze)
    for name in ("epochs", "patience", "batch_size", "seed"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int_at_least(0 if name == "seed" else 1),
            default=getattr(defaults, name),
            help=f"(default {getattr(defaults, name)})",
        )
    for name in ("learning_rate", "energy_weight", "force_weight", "stress_weight",
                 "validation_fraction", "anchor"):  # fmt: skip
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, name),
            help=f"(default {getattr(defaults, name):g})",
        )
    add_store_options(parser)
    parser.add_argument("--json", action="store_true", help="print the provenance as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Gather the frames, check them and the settings, tune, print where the model went."""
    from amorph.files import safe_directory
    from amorph.potentials.tuning import TuneSettings, check_frames, tune_chgnet
    from amorph.results.dft_frames import frames_from_file, frames_from_store
    from amorph.results.outputs import Outputs
    from amorph.results.reader import Database

    settings = TuneSettings(**{f.name: getattr(args, f.name) for f in fields(TuneSettings)})
    settings.validate()
    outputs = Outputs(args.outputs, args.store)
    if args.frames:
        frames = [frame for path in args.frames for frame in frames_from_file(path)]
        label = "files"
    else:
        frames = frames_from_store(Database.open(outputs), args.formulas or None)
        label = "-".join(args.formulas) or "audited"
    check_frames(frames)
    if args.out is None:
        name = f"chgnet-{label}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        out = safe_directory(outputs.root / "models", outputs.root) / name
    else:
        out = args.out.absolute()
        out.parent.mkdir(parents=True, exist_ok=True)
    provenance = tune_chgnet(frames, settings, out, args.model, log=True)
    if args.json:
        print(json_text(provenance))
        return 0
    metrics = provenance["metrics_held_out"]
    print(f"tuned model: {out}  (sha256 {provenance['sha256'][:12]}, {len(frames)} frames, "
          f"{provenance['epochs_run']} epochs)")  # fmt: skip
    print(f"{'held-out frames':<16} {'ΔP (GPa)':>16} {'force RMSE':>11} {'E spread':>10}")
    for name in ("base", "tuned"):
        m = metrics[name]
        dp = f"{m['pressure_difference_GPa']:+8.2f} ± {m['pressure_difference_sem_GPa']:4.2f}"
        print(f"{name:<16} {dp:>16} {m['force_rmse_eV_A']:11.3f} "
              f"{m['energy_spread_eV_per_atom']:10.4f}")  # fmt: skip
    print(f"use it: amorph run FORMULA --model {out}")
    return 0
