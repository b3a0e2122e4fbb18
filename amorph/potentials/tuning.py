"""Fine-tuning CHGNet on DFT-labelled frames, and the model directories it writes.

A tuned model is a directory: ``model.pth.tar`` (CHGNet's own format, ``CHGNet.from_file``) and
``tuned.json``, its provenance: the base model, the frames (stage uuids and frame indices, or
files) and the DFT settings that labelled them, the hyper-parameters, the metrics on held-out
frames, and the sha256 of the weights. ``--model DIR`` loads it after checking that the weights
are the ones described, and every stage it makes records the hash.

Energies: a DFT code's total energies have their own zero (GPAW's are relative to its atomic
setups), so each group of frames of one formula and one level of theory is shifted by its mean
difference to the base model's energies: the model learns energy differences between frames,
forces and stresses, not a new reference.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from monty.json import MSONable

from amorph.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

TUNED_FILE = "tuned.json"
WEIGHTS_FILE = "model.pth.tar"
FORMAT = 1  # the layout of a tuned model directory; another format is refused
MIN_FRAMES = 4  # at least three to learn from and one held out
FREEZE = {
    "none": (),
    "embeddings": ("atom_embedding", "bond_embedding", "angle_embedding",
                   "bond_basis_expansion", "angle_basis_expansion"),
    "interactions": ("atom_embedding", "bond_embedding", "angle_embedding",
                     "bond_basis_expansion", "angle_basis_expansion", "bond_conv_layers",
                     "angle_layers", "atom_conv_layers"),
}  # fmt: skip
"""What each ``freeze`` choice holds fixed (CHGNet module names); "interactions" trains only the
readout MLP."""
CONVERGENCE_KEYS = frozenset({"cutoff_eV", "kpoints", "scf", "smearing", "ediff_per_atom"})
"""Settings that converge a level of theory rather than define it: frames may differ in them."""


@dataclass
class LabelledFrame(MSONable):
    """A frame and its DFT labels: energy (eV), forces (eV/Å), stress (GPa, ASE's sign: negative
    under compression); ``source`` says where it came from, ``settings`` what computed it."""

    structure: Structure
    energy_eV: float
    forces: np.ndarray
    stress_GPa: np.ndarray
    source: dict[str, Any]
    settings: dict[str, Any]

    def __post_init__(self) -> None:
        """Arrays again where a job's JSON made lists of them."""
        self.forces = np.asarray(self.forces, dtype=float)
        self.stress_GPa = np.asarray(self.stress_GPa, dtype=float)

    @property
    def pressure_GPa(self) -> float:
        """The virial pressure, −tr(σ)/3."""
        return -float(np.trace(self.stress_GPa)) / 3


@dataclass
class TuneSettings(MSONable):
    """Hyper-parameters of a fine-tuning (defaults from ``scripts/bench_tune.py``'s measurement).

    Parameters
    ----------
    freeze
        What stays fixed: "none", "embeddings" or "interactions" (see :data:`FREEZE`).
    energy_weight, force_weight, stress_weight
        The loss weights of energies (eV/atom), forces (eV/Å) and stresses (GPa), CHGNet's MSE.
    validation_fraction
        Frames held out of the training, on which it stops early and is judged.
    patience
        Epochs without a better validation loss before stopping.
    anchor
        Pull of every trained weight toward the base model's (L2-SP: ``anchor · (θ − θ_base)``
        added to its gradient), against forgetting what the frames do not show; 0: none.
    """

    epochs: int = 60
    patience: int = 10
    learning_rate: float = 3e-4
    batch_size: int = 4
    freeze: str = "embeddings"
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 0.1
    validation_fraction: float = 0.25
    seed: int = 0
    anchor: float = 1.0

    def validate(self) -> None:
        """Raise ``InputError`` for settings that cannot work."""
        if self.freeze not in FREEZE:
            raise InputError(f"unknown freeze {self.freeze!r}: choose one of {', '.join(FREEZE)}")
        if not 0 < self.validation_fraction < 1:
            raise InputError("the validation fraction must lie between 0 and 1")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise InputError("epochs, patience and batch size must be at least 1")
        if self.learning_rate <= 0 or min(self.energy_weight, self.force_weight,
                                          self.stress_weight, self.anchor) < 0:  # fmt: skip
            raise InputError(
                "the learning rate must be positive, loss weights and the anchor non-negative"
            )


def theory(settings: dict[str, Any]) -> dict[str, Any]:
    """The level of theory of DFT ``settings``: what is left without :data:`CONVERGENCE_KEYS`."""
    return {k: v for k, v in settings.items() if k not in CONVERGENCE_KEYS}


def check_frames(frames: list[LabelledFrame]) -> None:
    """Raise ``InputError`` for too few frames, frames without stresses or forces, or frames of
    different levels of theory (one element's datasets differ, or the code or functional)."""
    if len(frames) < MIN_FRAMES:
        raise InputError(
            f"{len(frames)} DFT frames are too few to tune on: at least {MIN_FRAMES} "
            "(some are held out)"
        )
    for frame in frames:
        where = describe_source(frame.source)
        if frame.stress_GPa is None or np.shape(frame.stress_GPa) != (3, 3):
            raise InputError(f"{where} has no stress: a tuning needs energies, forces and stresses")
        if np.shape(frame.forces) != (len(frame.structure), 3):
            raise InputError(f"{where} has no forces for its {len(frame.structure)} atoms")
    theories: dict[str, LabelledFrame] = {}  # a frame of each level of theory
    datasets: dict[str, tuple[str, LabelledFrame]] = {}  # each element's dataset, and a frame
    for frame in frames:
        level = theory(frame.settings)
        for symbol, dataset in level.pop("datasets", {}).items():
            seen, other = datasets.setdefault(symbol, (dataset, frame))
            if seen != dataset:
                raise InputError(
                    f"mixed DFT settings: {symbol} has dataset {dataset} in "
                    f"{describe_source(frame.source)} but {seen} in "
                    f"{describe_source(other.source)}: tune on one level of theory"
                )
        theories.setdefault(json.dumps(level, sort_keys=True, default=str), frame)
    if len(theories) > 1:
        a, b = list(theories.values())[:2]
        raise InputError(
            f"mixed DFT settings: {describe_source(a.source)} ({_short(a.settings)}) and "
            f"{describe_source(b.source)} ({_short(b.settings)}): tune on one level of theory"
        )


def describe_source(source: dict[str, Any]) -> str:
    """``Li2O 2000 K frame 12`` or ``frames.xyz frame 3``, for messages."""
    if "file" in source:
        return f"{source['file']} frame {source['index']}"
    return f"{source['formula']} {source['temperature_K']:.0f} K frame {source['index']}"


def _short(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in theory(settings).items() if k != "datasets") or "-"


def file_hash(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_provenance(folder: Path, potential: str) -> dict[str, Any]:
    """The provenance of the tuned model directory ``folder`` for ``potential``; ``InputError``
    unless it is one of this format, for ``potential``, with the weights it describes."""
    path = Path(folder) / TUNED_FILE
    try:
        provenance = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a tuned model directory ({TUNED_FILE}: {exc})") from None
    if provenance.get("format") != FORMAT:
        raise InputError(
            f"{folder} was tuned by amorph {provenance.get('amorph_version', '?')} in format "
            f"{provenance.get('format')!r}; this amorph reads format {FORMAT}: tune it again"
        )
    if provenance.get("potential") != potential:
        raise InputError(
            f"{folder} is a tuned {provenance.get('potential')} model, not a {potential} one"
        )
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.is_file() or file_hash(weights) != provenance.get("sha256"):
        raise InputError(f"{weights} is missing or not the weights {TUNED_FILE} describes")
    return provenance


def tune_chgnet(
    frames: list[LabelledFrame],
    settings: TuneSettings,
    folder: Path,
    base_model: str | None = None,
    log: bool = False,
) -> dict[str, Any]:
    """Fine-tune CHGNet (``base_model``: a version or a tuned directory) on ``frames`` with
    CHGNet's ``Trainer``, keeping the epoch of lowest validation loss, and write the model
    directory ``folder`` (which must not exist; it appears whole or not at all). Returns the
    provenance written to ``tuned.json``."""
    import torch
    from chgnet.data.dataset import StructureData, collate_graphs
    from chgnet.trainer import Trainer
    from torch.utils.data import DataLoader

    from amorph import __version__
    from amorph.md.engine import EngineSpec
    from amorph.potentials.chgnet import load_chgnet_model

    settings.validate()
    check_frames(frames)
    folder = Path(folder)
    if folder.exists():
        raise InputError(f"{folder} exists: choose a new folder for the tuned model")
    spec = EngineSpec("chgnet", model=base_model)
    model = load_chgnet_model(spec)
    base = copy.deepcopy(model)
    order = np.random.default_rng(settings.seed).permutation(len(frames))
    n_valid = max(1, round(settings.validation_fraction * len(frames)))
    valid, train = sorted(order[:n_valid].tolist()), sorted(order[n_valid:].tolist())
    energies = shifted_energies(frames, base)
    with contextlib.redirect_stdout(None):  # CHGNet reports what it imported
        data = StructureData(
            structures=[f.structure for f in frames],
            energies=energies.tolist(),
            forces=[np.asarray(f.forces).tolist() for f in frames],
            # StructureData takes VASP's stresses (kbar, positive under compression)
            stresses=[(-10 * np.asarray(f.stress_GPa)).tolist() for f in frames],
            graph_converter=model.graph_converter,
            shuffle=False,
        )

    def loader(indices: list[int], shuffle: bool) -> DataLoader:
        return DataLoader(
            torch.utils.data.Subset(data, indices),
            batch_size=settings.batch_size,
            shuffle=shuffle,
            collate_fn=collate_graphs,
        )

    frozen = FREEZE[settings.freeze]
    hooks = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not name.startswith(frozen)
        if parameter.requires_grad and settings.anchor:
            start = parameter.detach().clone()
            hooks.append(
                parameter.register_hook(
                    lambda grad, p=parameter, p0=start: grad + settings.anchor * (p.detach() - p0)
                )
            )
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    trainer = Trainer(
        model,
        targets="efs",
        energy_loss_ratio=settings.energy_weight,
        force_loss_ratio=settings.force_weight,
        stress_loss_ratio=settings.stress_weight,
        epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        use_device="cpu",
        print_freq=10**6,
        torch_seed=settings.seed,
    )
    train_loader, valid_loader = loader(train, True), loader(valid, False)
    weights = {"e": settings.energy_weight, "f": settings.force_weight, "s": settings.stress_weight}
    best, best_state, history = np.inf, copy.deepcopy(model.state_dict()), []
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed tuning left
    tmp.mkdir(parents=True)
    clock = time.perf_counter()
    try:
        with (tmp / "training.log").open("w") as out, contextlib.redirect_stdout(out):
            from tqdm import trange

            for epoch in trange(settings.epochs, desc="tuning", unit="epoch", disable=not log):
                trainer.starting_epoch, trainer.epochs = epoch, epoch + 1
                trainer.train(train_loader, valid_loader, save_dir="")
                loss = sum(weights[k] * trainer.training_history[k]["val"][-1] for k in "efs")
                history.append({k: trainer.training_history[k]["val"][-1] for k in "efs"})
                if loss < best:
                    best, best_state, since = loss, copy.deepcopy(model.state_dict()), 0
                else:
                    since += 1
                    if since >= settings.patience:
                        break
        for hook in hooks:
            hook.remove()
        model.load_state_dict(best_state)
        torch.save({"model": model.as_dict()}, tmp / WEIGHTS_FILE)
        held_out = [frames[i] for i in valid]
        provenance = {
            "format": FORMAT,
            "amorph_version": __version__,
            "potential": "chgnet",
            "base_model": base_model or "0.3.0",
            "frames": [f.source for f in frames],
            "held_out": [frames[i].source for i in valid],
            "dft_settings": sorted(
                {json.dumps(f.settings, sort_keys=True, default=str) for f in frames}
            ),
            "settings": asdict(settings),
            "epochs_run": len(history),
            "training_seconds": round(time.perf_counter() - clock, 1),
            "validation_history": history,
            "metrics_held_out": {
                "base": frame_errors(base, held_out),
                "tuned": frame_errors(model, held_out),
            },
            "sha256": file_hash(tmp / WEIGHTS_FILE),
        }
        (tmp / TUNED_FILE).write_text(json.dumps(provenance, indent=1, default=str))
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return provenance


def predict(model, frames: list[LabelledFrame]) -> list[dict[str, np.ndarray]]:
    """``model``'s energy (eV/atom), forces (eV/Å) and stress (GPa, ASE's sign) of each frame."""
    with contextlib.redirect_stdout(None):
        out = model.predict_structure([f.structure for f in frames], task="efs", batch_size=4)
    return [out] if isinstance(out, dict) else out


def shifted_energies(frames: list[LabelledFrame], model) -> np.ndarray:
    """DFT energies per atom, each formula's (and level of theory's) frames shifted by their mean
    difference to ``model``'s."""
    dft = np.array([f.energy_eV / len(f.structure) for f in frames])
    own = np.array([float(p["e"]) for p in predict(model, frames)])
    groups: dict[str, list[int]] = {}
    for i, frame in enumerate(frames):
        key = json.dumps([frame.structure.reduced_formula, theory(frame.settings)], default=str)
        groups.setdefault(key, []).append(i)
    shifted = dft.copy()
    for members in groups.values():
        shifted[members] -= np.mean(dft[members] - own[members])
    return shifted


def frame_errors(model, frames: list[LabelledFrame]) -> dict[str, float]:
    """``model`` against the DFT labels of ``frames``: the mean pressure difference (model − DFT)
    with its standard error, force RMSE, and the spread of the energy difference per atom."""
    from amorph.constants import EV_A3_TO_GPA
    from amorph.md.engine import PointComparison, SinglePoint

    own = [
        SinglePoint(float(p["e"]) * len(f.structure), p["f"], np.asarray(p["s"]) / EV_A3_TO_GPA)
        for p, f in zip(predict(model, frames), frames, strict=True)
    ]
    dft = [SinglePoint(f.energy_eV, f.forces, f.stress_GPa / EV_A3_TO_GPA) for f in frames]
    compared = PointComparison.of(own, dft)
    return {
        "frames": len(frames),
        "pressure_difference_GPa": compared.pressure.mean,
        "pressure_difference_sem_GPa": compared.pressure.sem,
        "force_rmse_eV_A": compared.force_rmse_eV_A,
        "energy_spread_eV_per_atom": compared.energy_spread_eV_per_atom,
    }
