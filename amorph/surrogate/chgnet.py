"""CHGNet: loading the model (its pretrained weights ship in the ``chgnet`` wheel: no network) and the
engine around CHGNet's own ASE calculator (kind ``chgnet-ase``; the default ``chgnet`` is batched)."""

from __future__ import annotations

import contextlib
import io

from amorph.engine import EngineSpec
from amorph.errors import EngineError
from amorph.surrogate.ase_md import ASEEngine

CHGNET_MAX_Z = 94  # CHGNet's atom embedding covers H to Pu


def chgnet_ase_engine(spec: EngineSpec) -> ASEEngine:
    """CHGNet through its ASE calculator; ``spec.model`` is a CHGNet version ("0.3.0") or a checkpoint file."""
    from chgnet.model.dynamics import CHGNetCalculator

    model = load_chgnet_model(spec)
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints banners while loading
        calculator = CHGNetCalculator(model=model, use_device=spec.device, **spec.options)
    return ASEEngine(calculator, name="chgnet-ase", supported_numbers=set(range(1, CHGNET_MAX_Z + 1)))


def load_chgnet_model(spec: EngineSpec):
    """The CHGNet model named by ``spec.model``: a CHGNet version ("0.3.0") or a checkpoint file."""
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints banners while loading
        try:
            if spec.model and spec.model.endswith((".pth", ".pth.tar", ".tar")):
                return CHGNet.from_file(spec.model)
            return CHGNet.load(model_name=spec.model or "0.3.0", use_device=spec.device)
        except Exception as exc:  # noqa: BLE001 - any loading failure is reported the same way
            raise EngineError(f"cannot load CHGNet model {spec.model or '0.3.0'!r}: {exc}") from None
