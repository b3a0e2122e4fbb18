"""M3GNet engine through matgl: a pretrained model by name (from the matgl hub) or a local model directory."""

from __future__ import annotations

from pathlib import Path

from amorph.engine import EngineSpec
from amorph.errors import EngineError
from amorph.surrogate.ase_md import ASEEngine

DEFAULT_M3GNET_MODEL = "M3GNet-MP-2021.2.8-DIRECT-PES"


def m3gnet_ase_engine(spec: EngineSpec) -> ASEEngine:
    """M3GNet through matgl's ``PESCalculator``; ``spec.model`` is a pretrained name or a saved directory."""
    from ase.data import atomic_numbers

    potential = load_m3gnet_potential(spec.model or DEFAULT_M3GNET_MODEL)
    potential.calc_stresses = True
    if spec.device != "cpu":
        potential = potential.to(spec.device)
    from matgl.ext.ase import PESCalculator

    calculator = PESCalculator(potential, stress_unit="eV/A3", **spec.options)
    elements = getattr(potential.model, "element_types", None)
    numbers = {atomic_numbers[e] for e in elements} if elements else None
    return ASEEngine(calculator, name="m3gnet-ase", supported_numbers=numbers)


def load_m3gnet_potential(model: str):
    """Load a matgl potential from a local directory (model.json, model.pt, state.pt) or by hub name."""
    import matgl

    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith((".", "/", "~")) or "\\" in model
    if looks_local and not (path / "model.json").exists():
        raise EngineError(
            f"no matgl model in directory {model!r} (expected model.json, model.pt, state.pt); "
            "give a local directory written by Potential.save() or a pretrained model name such as "
            f"{DEFAULT_M3GNET_MODEL!r} on a machine with access to the matgl model hub"
        )
    try:
        return matgl.load_model(str(path) if looks_local else model)
    except Exception as exc:  # noqa: BLE001 - hub, network and format errors are all reported alike
        cause = exc.__cause__ or exc
        raise EngineError(
            f"cannot load M3GNet model {model!r} ({type(cause).__name__}: {cause}); give a pretrained "
            "model name on a machine with access to the matgl model hub, or a local model directory "
            "written by Potential.save()"
        ) from None
