"""GPAW (PAW-PBE plane waves) behind the engine interface: ab initio MD, single points and the
basis-set stress, on this machine or over MPI on a cluster.

``EngineSpec("gpaw", options={...})`` loads :class:`GpawEngine`; the options are the fields of
:class:`GpawSettings`, whose rules choose the cutoff, k-points, PAW datasets, smearing, spin and SCF
tolerance of a composition (:mod:`amorph.md.gpaw.settings` documents them and the measurements
behind them). ``pip install 'amorph[dft]'`` installs GPAW (README: "DFT with GPAW").
"""

from amorph.md.gpaw.engine import GpawEngine, gpaw_engine
from amorph.md.gpaw.settings import GpawSettings

__all__ = ["GpawEngine", "GpawSettings", "gpaw_engine"]
