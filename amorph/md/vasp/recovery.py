"""VASP under custodian: the error handlers amorph uses, and one VASP run with them.

Every VASP run goes through custodian, as in atomate2's ``run_vasp``: a handler that recognises an
error (in ``vasp.out``, ``std_err.txt``, OSZICAR) stops VASP, changes the inputs and reruns it, at
most ``max_errors`` times. MD uses the handlers of atomate2's ``MDMaker`` that apply to Γ-only NVT
MD (:func:`md_handlers`; not ``MeshSymmetryErrorHandler``, which checks k-point meshes, nor the
smearing handlers, which change the electronic temperature; like atomate2, not
``PotimErrorHandler``) plus custodian's ``WalltimeHandler``. custodian's
``UnconvergedErrorHandler`` looks at the last ionic step only and its
``NonConvergingErrorHandler`` at ten in a row; :class:`UnconvergedStepHandler` applies the
latter's correction as soon as any MD step used all NELM SCF steps.

An MD chunk is rerun from its own start after every correction (:class:`ChunkJob`), so that a
correction never loses or repeats frames: custodian's corrections for relaxations carry CONTCAR
over to POSCAR. A correction of the MD itself (``POTIM`` halved by ``VaspErrorHandler`` or
``PositiveEnergyErrorHandler`` once ``ALGO = Normal``) stops the run with ``EngineError``
(:mod:`amorph.md.vasp.runner`): the trajectory keeps one time step.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from custodian import Custodian
from custodian.custodian import CustodianError, ErrorHandler
from custodian.vasp.handlers import (
    FrozenJobErrorHandler,
    NonConvergingErrorHandler,
    PositiveEnergyErrorHandler,
    StdErrHandler,
    VaspErrorHandler,
    WalltimeHandler,
)
from custodian.vasp.jobs import VaspJob
from pymatgen.io.vasp import Incar, Oszicar

from amorph.errors import EngineError

_VASP_DEFAULT_NELM = 60
ATTEMPT_OUTPUTS = ("OSZICAR", "OUTCAR", "vasprun.xml", "CONTCAR", "XDATCAR")


class UnconvergedStepHandler(NonConvergingErrorHandler):
    """Any ionic step whose SCF used all NELM steps, corrected by custodian's ALGO ladder."""

    def check(self, directory: str = "./") -> bool:
        """Whether any ionic step used all NELM SCF steps (False while OSZICAR cannot be read)."""
        try:
            nelm = Incar.from_file(Path(directory) / "INCAR").get("NELM", _VASP_DEFAULT_NELM)
            steps = Oszicar(Path(directory) / "OSZICAR").electronic_steps
        except Exception:  # not written yet, or half-written: custodian's handlers do the same
            return False
        return any(len(step) >= nelm for step in steps)

    def correct(self, directory: str = "./") -> dict[str, Any]:
        """The ALGO ladder's correction, its error named ``SCF unconverged at NELM``."""
        return {**super().correct(directory=directory), "errors": ["SCF unconverged at NELM"]}


class FreshJob(VaspJob):
    """custodian's ``VaspJob``, every attempt without the outputs of the last one (kept in
    custodian's ``error.N.tar.gz``), which monitors would otherwise read as this attempt's."""

    def run(self, directory: str = "./"):
        """Remove the last attempt's outputs, then start VASP."""
        for name in ATTEMPT_OUTPUTS:
            (Path(directory) / name).unlink(missing_ok=True)
        return super().run(directory=directory)


class ChunkJob(FreshJob):
    """A :class:`FreshJob` whose every attempt starts from the POSCAR written for the MD chunk."""

    def run(self, directory: str = "./"):
        """Restore the chunk's POSCAR from POSCAR.orig, then start as a :class:`FreshJob`."""
        shutil.copyfile(Path(directory) / "POSCAR.orig", Path(directory) / "POSCAR")
        return super().run(directory=directory)


def walltime_handler(wall_time_s: float | None, buffer_s: float) -> WalltimeHandler | None:
    """A custodian ``WalltimeHandler`` for the job's walltime, ``None`` if it is not known."""
    handler = WalltimeHandler(wall_time=wall_time_s, buffer_time=buffer_s)
    return handler if handler.wall_time else None


def md_handlers(walltime: WalltimeHandler | None) -> list[ErrorHandler]:
    """The handlers of one MD chunk (see the module's docstring)."""
    handlers = [
        VaspErrorHandler(),
        UnconvergedStepHandler(),
        PositiveEnergyErrorHandler(),
        FrozenJobErrorHandler(),
        StdErrHandler(),
    ]
    return handlers + ([walltime] if walltime is not None else [])


def single_run_handlers() -> list[ErrorHandler]:
    """The handlers of a relaxation or a static run."""
    return [VaspErrorHandler(), UnconvergedStepHandler(), FrozenJobErrorHandler(), StdErrHandler()]


def run_with_custodian(
    command: str,
    directory: Path,
    handlers: list[ErrorHandler],
    custodian_kwargs: dict[str, Any],
    job_class: type[VaspJob] = FreshJob,
) -> list[dict[str, Any]]:
    """Run VASP in ``directory`` under custodian; return its corrections (``errors``,
    ``actions``), or raise ``EngineError`` with custodian's reason."""
    job = job_class(shlex.split(command), auto_gamma=False)
    custodian = Custodian(handlers, [job], directory=str(directory), **custodian_kwargs)
    try:
        custodian.run()
    except CustodianError as exc:
        raise EngineError(_reason(exc, getattr(custodian, "run_log", []))) from None
    except (FileNotFoundError, PermissionError) as exc:
        raise EngineError(
            f"cannot run the VASP command {command!r} ({exc.strerror}): set $AMORPH_VASP_CMD "
            "or the engine option 'command'"
        ) from None
    return corrections(custodian.run_log)


def corrections(run_log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The corrections custodian logged for its last job, as plain data."""
    done = run_log[-1]["corrections"] if run_log else []
    return [{"errors": list(c["errors"]), "actions": c["actions"]} for c in done]


def _reason(exc: CustodianError, run_log: list[dict[str, Any]]) -> str:
    handler = getattr(exc, "handler", None)
    if handler is not None:
        message = f"{type(handler).__name__} has no fix"
    else:
        message = str(exc).removesuffix(" Terminating...").rstrip(".")
    errors = sorted({error for c in corrections(run_log) for error in c["errors"]})
    seen = f" (errors met: {', '.join(errors)})" if errors else ""
    return f"custodian: {message}{seen}"
