"""The production run: long NVT MD at the converged volume, written in restartable chunks."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import job

from amorph.errors import check_range
from amorph.flows.stage import DURATIONS_PS, MDStageMaker, Target
from amorph.md.engine import MDResult, MDState
from amorph.trajectory import Trajectory


@dataclass
class ProductionMaker(MDStageMaker):
    """For each target, NVT MD continuing from the check run's positions, velocities and thermostat.

    Parameters
    ----------
    duration_ps
        Length of the run (the paper: 20 ps).
    chunk_ps
        The trajectory is written every ``chunk_ps`` with a checkpoint, so a killed job rerun with
        the same MD folder (``Target.run_dir``) continues from its last chunk.
    store_trajectory
        Also put the trajectory into the job store's ``data`` store (GridFS on MongoDB), for
        workers whose files are not shared with the machine that reads the results.
    """

    name: str = "production"
    duration_ps: float = 20.0
    chunk_ps: float = 2.0
    store_trajectory: bool = False

    def validate(self) -> None:
        """Check the chunk length, then the settings every MD stage checks."""
        check_range("production chunk length", self.chunk_ps, *DURATIONS_PS, " ps")
        super().validate()

    @job(data="trajectory")
    def make(self, targets: list[Target], starts: list[MDState]) -> list[MDResult]:
        """One production run per target from its start state, all in one engine call."""
        results = self.run_md(
            targets,
            starts,
            "production",
            [0] * len(targets),
            ["production"] * len(targets),
            self.chunk_ps,
        )
        if self.store_trajectory:
            for result in results:
                result.trajectory = Trajectory.load(result.trajectory_path)
        return results
