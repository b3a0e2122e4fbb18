"""jobflow Makers for the melt-quench pipeline."""

from amorph.flows.cell import RandomCellMaker
from amorph.flows.melt_quench import MeltQuenchMaker, TemperatureStageMaker
from amorph.flows.presets import PRESETS, demo_maker, protocol_maker
from amorph.flows.production import ProductionMaker
from amorph.flows.stage import MDStageMaker, Target
from amorph.flows.volume import CheckRunMaker, VolumeSearchMaker

__all__ = [
    "PRESETS",
    "CheckRunMaker",
    "MDStageMaker",
    "MeltQuenchMaker",
    "ProductionMaker",
    "RandomCellMaker",
    "Target",
    "TemperatureStageMaker",
    "VolumeSearchMaker",
    "demo_maker",
    "protocol_maker",
]
