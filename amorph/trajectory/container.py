"""The MD trajectory container shared by the engines (writers) and ``amorph.analysis`` (readers).

Only numpy is needed here, so trajectories can be analysed with a light install.

On disk a trajectory is one ``.npz`` file (written atomically) holding:

=====================  ======================  ==================================================
key                    shape                   meaning
=====================  ======================  ==================================================
``numbers``            (n_atoms,)              atomic numbers
``positions``          (n_frames, n_atoms, 3)  Cartesian positions in Å, *unwrapped*
``cells``              (n_frames, 3, 3)        lattice vectors (rows) in Å
``time_fs``            (n_frames,)             simulation time of each frame in fs
``energies``           (n_frames,)             potential energy in eV (optional)
``temperatures``       (n_frames,)             instantaneous kinetic temperature in K (optional)
``virial_pressures``   (n_frames,)             virial pressure in GPa, no kinetic term (optional)
``kinetic_pressures``  (n_frames,)             ideal-gas term N k_B T / V in GPa (optional)
``metadata``           ()                      JSON string: engine, time step, target T, ...
=====================  ======================  ==================================================
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from amorph.errors import TrajectoryError
from amorph.files import atomic_path

if TYPE_CHECKING:
    from pymatgen.core import Structure

OPTIONAL_FRAME_KEYS = ("energies", "temperatures", "virial_pressures", "kinetic_pressures")


@dataclass
class Trajectory:
    """Frames of one MD run: unwrapped positions, cells and per-frame thermodynamics."""

    numbers: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    time_fs: np.ndarray
    energies: np.ndarray | None = None
    temperatures: np.ndarray | None = None
    virial_pressures: np.ndarray | None = None
    kinetic_pressures: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The arrays as numpy arrays, a single cell repeated for every frame; ``TrajectoryError``
        if their shapes do not fit."""
        self.numbers = np.asarray(self.numbers, dtype=int)
        self.positions = np.asarray(self.positions, dtype=float)
        self.time_fs = np.asarray(self.time_fs, dtype=float)
        cells = np.asarray(self.cells, dtype=float)
        if cells.ndim == 2:
            cells = np.broadcast_to(cells, (len(self.positions), 3, 3)).copy()
        self.cells = cells
        n_frames = len(self.positions)
        if self.positions.ndim != 3 or self.positions.shape[1:] != (len(self.numbers), 3):
            raise TrajectoryError(
                f"positions have shape {self.positions.shape}, "
                f"expected (n_frames, {len(self.numbers)}, 3)"
            )
        if self.cells.shape != (n_frames, 3, 3) or self.time_fs.shape != (n_frames,):
            raise TrajectoryError("cells and time_fs must have one entry per frame")
        for key in OPTIONAL_FRAME_KEYS:
            value = getattr(self, key)
            if value is not None:
                value = np.asarray(value, dtype=float)
                if value.shape != (n_frames,):
                    raise TrajectoryError(f"{key} must have one value per frame")
                setattr(self, key, value)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.positions)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.numbers)

    @property
    def volumes(self) -> np.ndarray:
        """Cell volume of each frame in Å³."""
        return np.abs(np.linalg.det(self.cells))

    @property
    def total_pressures(self) -> np.ndarray | None:
        """Virial plus kinetic pressure in GPa, where both are known."""
        if self.virial_pressures is None or self.kinetic_pressures is None:
            return None
        return self.virial_pressures + self.kinetic_pressures

    @property
    def symbols(self) -> list[str]:
        """Chemical symbol of each atom."""
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.numbers]

    def structure(self, index: int = -1) -> Structure:
        """The frame ``index`` as a pymatgen ``Structure`` (positions wrapped into the cell)."""
        from pymatgen.core import Lattice, Structure

        return Structure(
            Lattice(self.cells[index]),
            self.symbols,
            self.positions[index],
            coords_are_cartesian=True,
            to_unit_cell=True,
        )

    def slice(
        self, start: int | None = None, stop: int | None = None, step: int | None = None
    ) -> Trajectory:
        """A new trajectory holding frames ``start:stop:step``."""
        sel = slice(start, stop, step)
        return Trajectory(
            numbers=self.numbers,
            positions=self.positions[sel],
            cells=self.cells[sel],
            time_fs=self.time_fs[sel],
            metadata=dict(self.metadata),
            **{
                k: None if getattr(self, k) is None else getattr(self, k)[sel]
                for k in OPTIONAL_FRAME_KEYS
            },
        )

    @classmethod
    def concatenate(cls, parts: list[Trajectory]) -> Trajectory:
        """Join consecutive pieces of one run (e.g. production chunks) into one trajectory."""
        if not parts:
            raise TrajectoryError("no trajectory pieces to concatenate")
        first = parts[0]
        if any(not np.array_equal(p.numbers, first.numbers) for p in parts):
            raise TrajectoryError("cannot concatenate trajectories with different atoms")
        optional = {}
        for key in OPTIONAL_FRAME_KEYS:
            values = [getattr(p, key) for p in parts]
            optional[key] = None if any(v is None for v in values) else np.concatenate(values)
        return cls(
            numbers=first.numbers,
            positions=np.concatenate([p.positions for p in parts]),
            cells=np.concatenate([p.cells for p in parts]),
            time_fs=np.concatenate([p.time_fs for p in parts]),
            metadata=dict(first.metadata),
            **optional,
        )

    def as_dict(self) -> dict[str, Any]:
        """MSON form: the compressed ``.npz`` bytes in base64, so a store holds it as one blob."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self._arrays())
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "npz_base64": base64.b64encode(buffer.getvalue()).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """The trajectory of an :meth:`as_dict` form."""
        return cls._from_npz(io.BytesIO(base64.b64decode(data["npz_base64"])), "stored trajectory")

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "numbers": self.numbers,
            "positions": self.positions,
            "cells": self.cells,
            "time_fs": self.time_fs,
            "metadata": np.array(json.dumps(self.metadata, default=str)),
        }
        arrays.update(
            {k: getattr(self, k) for k in OPTIONAL_FRAME_KEYS if getattr(self, k) is not None}
        )
        return arrays

    def save(self, path: str | Path) -> Path:
        """Write the trajectory to ``path`` (``.npz``) atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **self._arrays())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        """Read a trajectory written by :meth:`save`; a damaged file raises ``TrajectoryError``."""
        path = Path(path)
        if not path.exists():
            raise TrajectoryError(f"{path}: no such trajectory file")
        return cls._from_npz(path, str(path))

    @classmethod
    def _from_npz(cls, source, name: str) -> Trajectory:
        try:
            with np.load(source, allow_pickle=False) as data:
                kwargs = {k: data[k] for k in ("numbers", "positions", "cells", "time_fs")}
                kwargs.update({k: data[k] for k in OPTIONAL_FRAME_KEYS if k in data.files})
                metadata = json.loads(str(data["metadata"])) if "metadata" in data.files else {}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise TrajectoryError(f"{name}: not a readable amorph trajectory ({exc})") from None
        return cls(metadata=metadata, **kwargs)
