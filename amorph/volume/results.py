"""What the volume search and the check runs find, as typed results the flows pass on and the
store's documents are built from."""

from __future__ import annotations

from dataclasses import dataclass, field

from monty.json import MSONable

from amorph.md.engine import BasisStress, MDState, RunStats
from amorph.volume.eos import EOSFit, EOSPoint


@dataclass
class VolumeSearchResult(MSONable):
    """The sampled P(V) points, their fit, and the zero-pressure volume with a state to start at.

    With a plane-wave DFT engine, ``basis`` is its basis-set stress on a frame of the search, and
    the points' pressures (and so the fit and its zero) are at the converged basis.
    """

    points: list[EOSPoint]
    fit: EOSFit
    volume_A3: float
    start: MDState
    extra_volumes: int
    basis: BasisStress | None = None


@dataclass
class CheckResult(MSONable):
    """Where the check runs stand: the last volume, the statistics there, whether they passed.

    ``stats`` pool every run at the last volume (see :class:`CheckRunMaker`); ``history`` holds,
    after each run, the statistics its decision used, and ``decisions`` that decision
    ("converged", "extend", "rescale", "stop").
    """

    volume_A3: float
    stats: RunStats
    final_state: MDState
    converged: bool
    attempts: int
    history: list[RunStats] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)  # trajectories of the runs at this volume

    @property
    def extends(self) -> bool:
        """Whether the next run continues the last one at its volume."""
        return self.decisions[-1] == "extend"


@dataclass
class HotterStage(MSONable):
    """What a hotter stage of the same cell learnt: its P(V) fit and zero-pressure volume."""

    fit: EOSFit
    volume_A3: float
    temperature: float
