"""jobflow Makers for the melt-quench pipeline."""

from amorph.flows.md import Target
from amorph.flows.melt_quench import PRESETS, MeltQuenchMaker, TemperatureStageMaker, demo_maker
from amorph.flows.packing import RandomCellMaker
from amorph.flows.production import ProductionMaker
from amorph.flows.volume import CheckRunMaker, VolumeSearchMaker

__all__ = [
    "PRESETS",
    "CheckRunMaker",
    "MeltQuenchMaker",
    "ProductionMaker",
    "RandomCellMaker",
    "Target",
    "TemperatureStageMaker",
    "VolumeSearchMaker",
    "demo_maker",
]
