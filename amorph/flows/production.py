"""The production run: long NVT MD at the converged volume, written in restartable chunks."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Maker, job

from amorph.errors import InputError
from amorph.flows.md import Target, derive_seed, run_md
from amorph.md.engine import EngineSpec, MDResult, MDSettings, MDState
from amorph.trajectory import Trajectory


@dataclass
class ProductionMaker(Maker):
    """For each target, ``duration_ps`` of NVT MD continuing from the check run's positions, velocities and thermostat.

    The trajectory is written every ``chunk_ps`` with a checkpoint, so a killed job rerun in the same
    directory continues from its last chunk. With ``store_trajectory`` the trajectory also goes into
    the job store's ``data`` store (GridFS on MongoDB), for workers whose files are not shared.
    """

    name: str = "production"
    duration_ps: float = 20.0
    chunk_ps: float = 2.0
    md: MDSettings = field(default_factory=MDSettings)
    store_trajectory: bool = False

    def validate(self) -> None:
        if self.duration_ps <= 0 or self.chunk_ps <= 0:
            raise InputError("production duration and chunk length must be positive")
        self.md.validate()

    @job(data="trajectory")
    def make(
        self, targets: list[Target], starts: list[MDState], engine: EngineSpec, seed: int = 1
    ) -> list[MDResult]:
        """One production run per target from its start state (the check run's end), all in one engine call."""
        results = run_md(
            engine,
            targets,
            starts,
            seeds=[derive_seed(seed, t.temperature, 1000) for t in targets],
            labels=["production"] * len(targets),
            duration_ps=self.duration_ps,
            settings=self.md,
            chunk_ps=self.chunk_ps,
        )
        if self.store_trajectory:
            for result in results:
                result.trajectory = Trajectory.load(result.trajectory_path)
        return results
