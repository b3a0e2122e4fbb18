"""SevenNet: pretrained equivariant potentials whose weights ship in the ``sevenn`` wheel (no
network), as a batched potential on tensors (engine kind ``sevennet``) and through SevenNet's own
ASE calculator (``sevennet-ase``).

``spec.model`` is a pretrained name ("7net-0", the default; "7net-l3i5", "7net-mf-0" ... — sevenn
0.13 ships 7net-0, 7net-0_22may2024, 7net-l3i5 and 7net-mf-0, and downloads the others on first use)
or a checkpoint file. Multi-fidelity models need ``spec.options["modal"]`` (for 7net-mf-0 "PBE" or
"R2SCAN").

SevenNet's model is a sequence of modules over a dictionary of tensors whose only geometric input is
``edge_vec``, the vector of each directed edge ``edge_index[0] → edge_index[1]``; its last module
(``force_output``) differentiates the energy with respect to those vectors. The batched potential
drops that module and feeds the model edge vectors built from amorph's neighbour list and the
(strained) positions and cells of many replicas at once, with the replica of each atom as ``batch``,
so that the energies are differentiated by :class:`~amorph.md.potential.BatchedPotential`: the
arithmetic of every other module is SevenNet's own.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import Tensor

from amorph.errors import EngineError
from amorph.md.ase import ASEEngine
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec
from amorph.md.potential import BatchedPotential, Systems
from amorph.potentials.graph import neighbor_list

DEFAULT_SEVENNET_MODEL = "7net-0"


def _require_sevenn() -> None:
    try:
        import sevenn  # noqa: F401
    except ImportError:
        raise EngineError(
            "the SevenNet engines need the sevenn package: pip install 'amorph[sevennet]'"
        ) from None


@contextlib.contextmanager
def _loading(model: str):
    """Quiet SevenNet while it loads ``model``; any failure becomes one ``EngineError`` line."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message="No tensor product accelerator")
            yield
    except Exception as exc:  # file, format, download and modal errors alike
        detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise EngineError(
            f"cannot load SevenNet model {model!r} ({type(exc).__name__}: {detail}); give a "
            f"checkpoint file or a pretrained name whose weights ship in the sevenn wheel, such as "
            f"{DEFAULT_SEVENNET_MODEL!r} (others are downloaded on first use)"
        ) from None


def sevennet_ase_engine(spec: EngineSpec) -> ASEEngine:
    """SevenNet through its ``SevenNetCalculator``; ``spec.options`` are its keyword arguments."""
    _require_sevenn()
    from sevenn.calculator import SevenNetCalculator

    model = spec.model or DEFAULT_SEVENNET_MODEL
    with _loading(model):
        calculator = SevenNetCalculator(model=model, device=spec.device, **spec.options)
    return ASEEngine(calculator, name="sevennet-ase", supported_numbers=set(calculator.type_map))


def load_sevennet_model(model: str):
    """SevenNet's model (an ``AtomGraphSequential``) from a pretrained name or a checkpoint file."""
    _require_sevenn()
    from sevenn.util import load_checkpoint

    with _loading(model):
        return load_checkpoint(model).build_model()


class SevenNetPotential(BatchedPotential):
    """A SevenNet model evaluated on batches of replicas.

    Parameters
    ----------
    model
        An ``AtomGraphSequential`` built from a checkpoint; it is changed in place (its force
        output is removed, it is set to batched input) and should not be used elsewhere.
    modal
        The fidelity of a multi-fidelity model (a key of its ``modal_map``); None for the others.
    device
        Where the model runs.
    """

    name = "sevennet"

    def __init__(self, model, modal: str | None = None, device: str | torch.device = "cpu"):
        import sevenn._keys as keys

        self.keys = keys
        self.modal_index = None
        if model.modal_map:
            if modal not in model.modal_map:
                raise EngineError(
                    f"SevenNet model needs option modal, one of {', '.join(model.modal_map)}; "
                    f"got {modal!r}"
                )
            self.modal_index = model.modal_map[modal]
            model.eval_modal_map = False  # the modal index of each replica is given below
        model.delete_module_by_key("force_output")  # forces and stresses: BatchedPotential
        model.key_grad = None
        model.set_is_batch_data(True)
        super().__init__(model, device)
        self.cutoff = float(model.cutoff)
        self.supported_numbers = frozenset(model.type_map)

    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        """SevenNet's total energies on the batch's neighbour list (fidelity ``modal``, if set)."""
        keys = self.keys
        edges = neighbor_list(systems, self.cutoff)
        data = {
            keys.ATOMIC_NUMBERS: systems.numbers,
            keys.NODE_FEATURE: systems.numbers,  # replaced by the one-hot species in the model
            keys.EDGE_IDX: torch.stack([edges.center, edges.neighbor]),
            keys.EDGE_VEC: edges.vectors(positions, cells, systems.owner),
            keys.BATCH: systems.owner,
        }
        if self.modal_index is not None:
            data[keys.MODAL_TYPE] = torch.full(
                (systems.n_replicas,), self.modal_index, device=positions.device
            )
        return self.model(data)[keys.PRED_TOTAL_ENERGY]


def sevennet_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine with SevenNet; ``spec.options`` may set ``modal`` and ``max_atoms``."""
    options = dict(spec.options)
    modal = options.pop("modal", None)
    model = load_sevennet_model(spec.model or DEFAULT_SEVENNET_MODEL)
    potential = SevenNetPotential(model, modal=modal, device=spec.device)
    return BatchedEngine(potential, name="sevennet", **options)
