"""MD trajectories: the :class:`Trajectory` container (numpy only) and readers of other formats.

Readers live in :mod:`.formats`.
"""

from amorph.trajectory.container import Trajectory

__all__ = ["Trajectory"]
