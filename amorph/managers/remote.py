"""Submitting melt-quench flows to a jobflow-remote project (SLURM, PBS, ... through its workers).

The flows are built here without loading any model; the project's runner (``jf runner start``)
submits each job to the worker's queue. MD files go to ``run_dir``, by default
``<worker work_dir>/amorph-runs`` on the cluster: a job that is killed (node failure, time limit,
``scancel``) and rerun (``jf job rerun``) reuses the MD runs it finished and continues its
production from the last checkpoint, as long as ``run_dir`` is on a file system every node sees.
Production trajectories go into the project's job store (GridFS), so that ``amorph db``,
``features`` and ``publish`` work from any machine that reaches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from amorph.errors import InputError


@dataclass
class Destination:
    """A jobflow-remote project and the worker its jobs run on."""

    project: str
    worker: str
    work_dir: str
    jobstore: dict

    @classmethod
    def find(cls, project: str | None = None, worker: str | None = None) -> Destination:
        """The project (default: jobflow-remote's current one) and worker (default: its first)."""
        try:
            from jobflow_remote.config import ConfigManager
            from jobflow_remote.config.base import ConfigError
        except ImportError:
            raise InputError(
                "amorph submit needs jobflow-remote: pip install 'amorph[hpc]'"
            ) from None
        try:
            config = ConfigManager().get_project(project)
        except ConfigError as exc:
            raise InputError(f"jobflow-remote project {project or '(current)'}: {exc}") from None
        workers = config.workers
        if not workers:
            raise InputError(f"jobflow-remote project {config.name} has no workers")
        name = worker or next(iter(workers))
        if name not in workers:
            raise InputError(
                f"no worker {name!r} in jobflow-remote project {config.name} "
                f"(it has: {', '.join(workers)})"
            )
        return cls(config.name, name, str(workers[name].work_dir), dict(config.jobstore))

    @property
    def default_run_dir(self) -> str:
        """Where MD files go unless told otherwise: ``amorph-runs`` in the worker's ``work_dir``."""
        return str(PurePosixPath(self.work_dir) / "amorph-runs")


def submit(flows: list, destination: Destination, exec_config: str | None = None) -> list[str]:
    """Add ``flows`` to the project's queue; return the db ids of their jobs.

    Parameters
    ----------
    flows
        jobflow flows to submit.
    destination
        The project and worker they run on.
    exec_config
        Name of a jobflow-remote execution configuration (modules, environment) of the worker;
        None uses the worker's default.
    """
    from jobflow_remote import submit_flow

    ids = []
    for flow in flows:
        ids += submit_flow(
            flow, worker=destination.worker, project=destination.project, exec_config=exec_config
        )
    return ids
