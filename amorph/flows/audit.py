"""DFT audits: how far a stage's engine is from DFT on frames of its own production run.

Frames are sampled evenly from the equilibrated part of the production trajectory; a DFT engine
(GPAW by default, VASP on clusters) computes single points on them, ``frames_per_job`` frames per
job, so that a workflow manager runs them in parallel; the stage's own engine computes the same
frames in one job; a summary job writes the :class:`~amorph.results.schemas.AuditDoc` into the
store, where ``amorph db`` finds it beside the stage. ``amorph audit FORMULA`` audits stored
stages; ``amorph run --audit gpaw`` audits every stage of the flow as it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jobflow import Flow, Maker, Response, job
from monty.json import MSONable
from pymatgen.core import Structure

from amorph.errors import InputError, check_range
from amorph.flows.second_opinion import sample_frames
from amorph.md.engine import EngineSpec, MDResult, SinglePoint
from amorph.results.documents import audit_document
from amorph.results.schemas import AuditDoc, StageDoc
from amorph.trajectory import Trajectory

DISAGREEMENT_GPA = 0.5
"""A stage disagrees with DFT when its pressure differs by more than this (significantly): the
paper's check-run tolerance, 5 kbar, the precision the volume search itself works to."""


@dataclass
class AuditSubject(MSONable):
    """What is audited: a stage (the job that wrote its document), its engine and EOS modulus."""

    formula: str
    temperature: float
    stage_uuid: str
    engine: EngineSpec
    bulk_modulus_GPa: float


@dataclass
class AuditMaker(Maker):
    """DFT single points on frames of a production run, beside its own engine's.

    Parameters
    ----------
    engine
        The DFT engine (GPAW by default; ``EngineSpec("vasp")`` on clusters with VASP).
    frames
        Frames audited per stage, evenly spread over the production run after
        ``equilibration_fraction``.
    frames_per_job
        DFT frames per job: 1 runs every frame as its own job (in parallel on a cluster).
    tolerance_GPa
        Pressure difference beyond which (significantly) a stage is flagged ``disagreement``.
    """

    name: str = "dft audit"
    engine: EngineSpec = field(default_factory=lambda: EngineSpec("gpaw"))
    frames: int = 8
    frames_per_job: int = 1
    tolerance_GPa: float = DISAGREEMENT_GPA
    equilibration_fraction: float = 0.5

    def validate(self) -> None:
        """Raise ``InputError`` for settings that cannot work."""
        if self.frames < 2:
            raise InputError("an audit needs at least two frames (for the error of its mean)")
        if self.frames_per_job < 1:
            raise InputError("an audit job computes at least one frame")
        check_range("audit tolerance", self.tolerance_GPa, 0.001, 100, " GPa")
        check_range("equilibration fraction", self.equilibration_fraction, 0, 0.99)

    def frame_indices(self, trajectory: Trajectory) -> list[int]:
        """The ``frames`` frame indices to audit, evenly spread after the equilibration fraction."""
        return sample_frames(trajectory, self.frames, self.equilibration_fraction)

    def make(self, subject: AuditSubject, frames: list[Structure], indices: list[int]) -> Flow:
        """The audit of ``frames`` (the production frames ``indices``) of ``subject``."""
        self.validate()
        name = f"{subject.formula} {subject.temperature:.0f} K"
        dft_jobs = []
        for start in range(0, len(frames), self.frames_per_job):
            chunk = frames[start : start + self.frames_per_job]
            points = single_points(self.engine, chunk)
            points.name = f"dft {name} frames {start + 1}-{start + len(chunk)}"
            dft_jobs.append(points)
        own = single_points(subject.engine, frames)
        own.name = f"{subject.engine.label} {name} frames"
        summary = summarize_audit(
            self, subject, frames[0], indices, [j.output for j in dft_jobs], own.output
        )
        summary.name = f"audit {name}"
        return Flow([*dft_jobs, own, summary], output=summary.output, name=f"{self.name} {name}")


@job
def single_points(engine: EngineSpec, frames: list[Structure]) -> list[dict[str, Any]]:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, ASE's sign) of each frame; files (DFT logs)
    go to the job's folder."""
    live = engine.load()
    live.check_elements(sorted({el.symbol for s in frames for el in s.composition}))
    return [
        {"energy_eV": p.energy_eV, "forces": p.forces.tolist(), "stress": p.stress.tolist()}
        for p in live.evaluate(frames, Path.cwd())
    ]


@job(output_schema=AuditDoc)
def summarize_audit(
    maker: AuditMaker,
    subject: AuditSubject,
    frame: Structure,
    indices: list[int],
    dft: list[list[dict[str, Any]]],
    own: list[dict[str, Any]],
) -> AuditDoc:
    """The audit's document from the DFT jobs' points (in frame order) and the engine's."""

    def points(rows):
        return [
            SinglePoint(r["energy_eV"], np.asarray(r["forces"]), np.asarray(r["stress"]))
            for r in rows
        ]

    return audit_document(
        subject.formula,
        subject.temperature,
        subject.stage_uuid,
        subject.engine,
        subject.bulk_modulus_GPa,
        indices,
        points([row for part in dft for row in part]),
        points(own),
        maker.engine,
        maker.engine.load().describe(frame),
        maker.tolerance_GPa,
    )


@job
def audit_production(
    maker: AuditMaker, stage: StageDoc, stage_uuid: str, production: MDResult, engine: EngineSpec
) -> Response:
    """Replace this job by the audit of a stage that just ended (its document and production)."""
    trajectory = production.load_trajectory()
    indices = maker.frame_indices(trajectory)
    subject = AuditSubject(
        stage.formula, stage.temperature_K, stage_uuid, engine, stage.eos.fit.b0_GPa
    )
    flow = maker.make(subject, [trajectory.structure(i) for i in indices], indices)
    return Response(replace=flow)
