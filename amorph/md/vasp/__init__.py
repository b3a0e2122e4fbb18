"""VASP (PAW-PBE) behind the engine interface: ab initio MD for every flow, relaxations and statics.

``EngineSpec("vasp", options={...})`` loads :class:`VaspEngine`; the options are the fields of
:class:`VaspSettings` (the VASP command, INCAR updates, POTCAR choices). POTCARs are found through
pymatgen's ``PMG_VASP_PSP_DIR``; the command is ``options["command"]``, else ``$AMORPH_VASP_CMD``,
else ``vasp_std``; it runs under custodian (:mod:`amorph.md.vasp.recovery`, ``pip install
'amorph[vasp]'``). ``options={"inputs": "paper"}`` writes ``MPMDSet``'s MD inputs unchanged
(:mod:`amorph.md.vasp.settings` lists what amorph changes, and why).
"""

from amorph.md.vasp.runner import VaspEngine, vasp_engine
from amorph.md.vasp.settings import LIMIT_INCAR, MD_INCAR, MD_INPUTS, VaspSettings

__all__ = ["LIMIT_INCAR", "MD_INCAR", "MD_INPUTS", "VaspEngine", "VaspSettings", "vasp_engine"]
