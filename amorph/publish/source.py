"""Where contributions come from: the results folders that ``amorph run`` writes.

Kept to one reader so that the database store (``amorph db``) can replace it later: anything that
yields :class:`ResultEntry`-like objects (a ``summary`` dict, ``structure()``, ``trajectory()``)
works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pymatgen.core import Structure

from amorph.publish import PublishError
from amorph.trajectory import Trajectory


@dataclass(frozen=True)
class ResultEntry:
    """One composition at one temperature: ``<results>/<formula>/<T>K/``."""

    directory: Path
    summary: dict

    def structure(self) -> Structure:
        """The final production frame (``structure.json``)."""
        return Structure.from_dict(json.loads((self.directory / "structure.json").read_text()))

    def trajectory(self) -> Trajectory:
        """The production trajectory (``trajectory.npz`` of this folder)."""
        return Trajectory.load(self.directory / "trajectory.npz")


def read_results(results_dir: str | Path) -> list[ResultEntry]:
    """Every ``<formula>/<T>K/summary.json`` below ``results_dir``, in folder order."""
    root = Path(results_dir)
    if not root.is_dir():
        raise PublishError(f"no results folder {root}")
    entries = []
    for path in sorted(root.glob("*/*K/summary.json")):
        try:
            entries.append(ResultEntry(path.parent, json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise PublishError(f"{path}: unreadable summary ({exc})") from None
    if not entries:
        raise PublishError(f"no results (<formula>/<T>K/summary.json) in {root}")
    return entries
