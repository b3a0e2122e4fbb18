"""Read MD trajectories (XDATCAR, vasprun.xml, ASE, pymatgen, amorph ``.npz``) as ``Trajectory``.

Every reader returns Cartesian positions unwrapped across periodic boundaries: the fractional
frame-to-frame displacement is brought to its minimum image (``Δf - round(Δf)``), which is exact for
triclinic cells as long as an atom moves less than half a cell height between frames, and the image
jumps are accumulated in Cartesian space with the cell of the frame where they happen (so that
variable-cell runs carry no spurious affine displacement). Frames are parsed in blocks straight into
numpy arrays, never through per-frame pymatgen ``Structure`` objects.

Files that do not record time (XDATCAR, most ASE files) get ``time_fs = NaN`` unless a time step is
given; the diffusion analysis then asks for one.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np

from amorph.constants import K_B_EV
from amorph.errors import InputError, TrajectoryError
from amorph.trajectory import Trajectory
from amorph.trajectory.container import OPTIONAL_FRAME_KEYS

logger = logging.getLogger(__name__)

FORMATS = ("npz", "xdatcar", "vasprun", "ase")
_BLOCK_FRAMES = 256  # frames parsed per numpy call, and per vectorised unwrap step


def read_trajectory(
    path: str | Path,
    *,
    time_step_fs: float | None = None,
    temperature_K: float | None = None,
    fmt: str | None = None,
) -> Trajectory:
    """Read any supported trajectory file; ``fmt`` (one of ``FORMATS``) overrides detection.

    ``time_step_fs`` is the time between stored frames and ``temperature_K`` the run temperature;
    given values override what the file records (with a warning when they disagree).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a trajectory file in it (XDATCAR, vasprun.xml)")
    if not path.is_file():
        raise InputError(f"{path}: no such trajectory file")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(FORMATS)}")
    reader = {
        "npz": Trajectory.load,
        "xdatcar": read_xdatcar,
        "vasprun": read_vasprun,
        "ase": read_ase,
    }
    traj = reader[fmt](path)
    check_finite(traj, path)
    traj.metadata.setdefault("source", str(path))
    return with_run_conditions(traj, time_step_fs=time_step_fs, temperature_K=temperature_K)


def check_finite(traj: Trajectory, source: str | Path) -> None:
    """Raise ``TrajectoryError`` naming the first frame with a NaN or infinite position, cell,
    energy, temperature or pressure (times may be unknown)."""
    for key in ("positions", "cells", *OPTIONAL_FRAME_KEYS):
        values = getattr(traj, key)
        if values is None:
            continue
        bad = ~np.isfinite(values.reshape(traj.n_frames, -1)).all(axis=1)
        if bad.any():
            frame = int(np.argmax(bad)) + 1
            raise TrajectoryError(f"{source}: frame {frame}: {key} are not finite numbers")


def detect_format(path: Path) -> str:
    """Guess the format from the file name, then from its first bytes."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".npz"):
        return "npz"
    if "xdatcar" in name:
        return "xdatcar"
    if name.startswith("vasprun") or name.endswith(".xml"):
        return "vasprun"
    if name.endswith((".traj", ".extxyz", ".xyz")):
        return "ase"
    with _open_binary(path) as fh:
        head = fh.read(64)
    if head.startswith(b"PK"):
        return "npz"
    if head.lstrip().startswith(b"<?xml"):
        return "vasprun"
    if head.startswith(b"- of Ulm"):
        return "ase"
    raise TrajectoryError(f"{path}: cannot tell the trajectory format from the name or contents")


def with_run_conditions(
    traj: Trajectory, *, time_step_fs: float | None = None, temperature_K: float | None = None
) -> Trajectory:
    """Set frame spacing and temperature in place (user values win over the file's); return traj."""
    source = traj.metadata.get("source", "trajectory")
    if time_step_fs is not None:
        if not time_step_fs > 0:
            raise InputError(f"the time step must be positive, got {time_step_fs}")
        recorded = np.diff(traj.time_fs)
        if (
            len(recorded)
            and np.all(np.isfinite(recorded))
            and not np.allclose(recorded, time_step_fs, rtol=1e-6)
        ):
            logger.warning(
                "%s: using %g fs between frames instead of the recorded %g fs",
                source,
                time_step_fs,
                float(np.median(recorded)),
            )
        traj.time_fs = (
            traj.time_fs[0] if np.isfinite(traj.time_fs[0]) else 0.0
        ) + time_step_fs * np.arange(traj.n_frames)
        traj.metadata["frame_interval_fs"] = float(time_step_fs)
    if temperature_K is not None:
        if not temperature_K > 0:
            raise InputError(f"the temperature must be positive, got {temperature_K} K")
        recorded_T = traj.metadata.get("temperature_K")
        if recorded_T is not None and not math.isclose(
            float(recorded_T), temperature_K, rel_tol=1e-6
        ):
            logger.warning(
                "%s: using %g K instead of the recorded %g K", source, temperature_K, recorded_T
            )
        traj.metadata["temperature_K"] = float(temperature_K)
    return traj


def unwrap_fractional(frac: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Turn fractional positions (n_frames, n_atoms, 3), wrapped or not, into unwrapped Cartesian.

    Works in place on ``frac`` (float64) in blocks of frames, so the extra memory is one block.
    """
    prev = frac[0].copy()
    correction = np.zeros(frac.shape[1:])
    frac[0] = frac[0] @ cells[0]
    for start in range(1, len(frac), _BLOCK_FRAMES):
        block = frac[start : start + _BLOCK_FRAMES]
        block_cells = cells[start : start + len(block)]
        jumps = np.diff(block, axis=0, prepend=prev[None])
        np.round(jumps, out=jumps)
        prev = block[-1].copy()
        jumps = np.cumsum(jumps @ block_cells, axis=0)
        jumps += correction
        correction = jumps[-1].copy()
        block[...] = block @ block_cells - jumps
    return frac


def from_frames(
    numbers: np.ndarray,
    frac: np.ndarray,
    cells: np.ndarray,
    *,
    time_fs: np.ndarray | None = None,
    metadata: dict[str, Any] | None = None,
    **frame_arrays: np.ndarray | None,
) -> Trajectory:
    """Build an unwrapped ``Trajectory`` from fractional frames; ``frac`` is overwritten."""
    frac = np.ascontiguousarray(frac, dtype=float)
    cells = np.asarray(cells, dtype=float)
    if cells.ndim == 2:
        cells = np.broadcast_to(cells, (len(frac), 3, 3))
    times = np.full(len(frac), np.nan) if time_fs is None else time_fs
    return Trajectory(
        numbers=numbers,
        positions=unwrap_fractional(frac, cells),
        cells=cells,
        time_fs=times,
        metadata=dict(metadata or {}),
        **frame_arrays,
    )


# --- XDATCAR


def read_xdatcar(path: str | Path) -> Trajectory:
    """Read a VASP 5+ XDATCAR (fixed or variable cell, gzipped or not)."""
    path = Path(path)
    blocks: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    pending: list[str] = []
    with _open_text(path) as fh:
        try:
            symbols, counts, cell = _xdatcar_header(path, fh, frame=1)
            n_atoms = sum(counts)
            while line := fh.readline():
                frame = len(cells) + 1
                text = line.strip().lower()
                if not text:
                    continue
                if text.startswith("cartesian"):
                    raise TrajectoryError(
                        f"{path}: frame {frame}: Cartesian XDATCAR frames are not supported"
                    )
                if not text.startswith("direct"):
                    # a variable-cell XDATCAR repeats the header before every frame
                    header = _xdatcar_header(path, fh, frame, first_line=line)
                    if header[:2] != (symbols, counts):
                        raise TrajectoryError(
                            f"{path}: frame {frame}: the atoms differ from those of frame 1"
                        )
                    cell = header[2]
                    continue
                lines = list(islice(fh, n_atoms))
                if len(lines) < n_atoms:
                    raise TrajectoryError(
                        f"{path}: frame {frame} is truncated ({len(lines)} of {n_atoms} atom lines)"
                    )
                pending.extend(lines)
                cells.append(cell)
                if len(pending) >= _BLOCK_FRAMES * n_atoms:
                    blocks.append(_parse_coordinates(path, pending, n_atoms, last_frame=frame))
                    pending = []
        except (OSError, EOFError) as exc:  # e.g. a gzip stream cut short
            raise TrajectoryError(
                f"{path}: frame {len(cells) + 1}: unreadable or truncated ({exc})"
            ) from None
    if pending:
        blocks.append(_parse_coordinates(path, pending, n_atoms, last_frame=len(cells)))
    if not cells:
        raise TrajectoryError(f"{path}: no frames found (frame 1 is missing)")
    numbers = np.repeat([_atomic_number(path, s) for s in symbols], counts)
    frac = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    del blocks
    return from_frames(numbers, frac, np.array(cells), metadata={"format": "xdatcar"})


def write_xdatcar(traj: Trajectory, path: str | Path) -> Path:
    """Write ``traj`` as a VASP 5 XDATCAR (wrapped fractional coordinates; gzipped if ``.gz``).

    The header is repeated before every frame when the cell changes, as VASP does for NpT runs.
    """
    path = Path(path)
    symbols = traj.symbols
    species = list(dict.fromkeys(symbols))
    if symbols != sorted(symbols, key=species.index):
        raise InputError("XDATCAR needs the atoms grouped by species")
    counts = [symbols.count(s) for s in species]
    variable = not np.allclose(traj.cells, traj.cells[0])
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt") as fh:
        for f in range(traj.n_frames):
            if f == 0 or variable:
                fh.write("amorph\n1.0\n")
                fh.write("".join(f"{v[0]:14.8f}{v[1]:14.8f}{v[2]:14.8f}\n" for v in traj.cells[f]))
                fh.write(" ".join(species) + "\n" + " ".join(map(str, counts)) + "\n")
            frac = np.linalg.solve(traj.cells[f].T, traj.positions[f].T).T
            fh.write(f"Direct configuration= {f + 1:6d}\n")
            np.savetxt(fh, frac - np.floor(frac), fmt="%12.8f")
    return path


def _xdatcar_header(path: Path, fh: IO[str], frame: int, first_line: str | None = None):
    lines = ([first_line] if first_line is not None else []) + list(
        islice(fh, 7 - (first_line is not None))
    )
    if len(lines) < 7:
        raise TrajectoryError(f"{path}: frame {frame}: the header is truncated")
    try:
        scale = float(lines[1].split()[0])
        cell = np.array([[float(x) for x in line.split()[:3]] for line in lines[2:5]])
        counts = [int(x) for x in lines[6].split()]
    except (ValueError, IndexError):
        raise TrajectoryError(
            f"{path}: frame {frame}: not an XDATCAR header (lattice or atom counts)"
        ) from None
    symbols = [s.split("/")[0].split("_")[0] for s in lines[5].split()]
    if cell.shape != (3, 3) or len(symbols) != len(counts) or not counts:
        raise TrajectoryError(
            f"{path}: frame {frame}: need VASP 5 element names and matching atom counts"
        )
    if scale < 0:  # a negative scale is the cell volume
        scale = (-scale / abs(np.linalg.det(cell))) ** (1 / 3)
    return symbols, counts, cell * scale


def _parse_coordinates(path: Path, lines: list[str], n_atoms: int, last_frame: int) -> np.ndarray:
    """Parse atom lines of consecutive frames ending at ``last_frame`` into (frames, atoms, 3)."""
    first_frame = last_frame + 1 - len(lines) // n_atoms
    try:
        return np.loadtxt(lines, usecols=(0, 1, 2), ndmin=2).reshape(-1, n_atoms, 3)
    except ValueError:
        for k in range(len(lines) // n_atoms):  # find the bad frame to name it
            try:
                np.loadtxt(lines[k * n_atoms : (k + 1) * n_atoms], usecols=(0, 1, 2), ndmin=2)
            except ValueError as exc:
                raise TrajectoryError(
                    f"{path}: frame {first_frame + k}: unreadable coordinates ({exc})"
                ) from None
        raise


def _atomic_number(source: str | Path, symbol: str) -> int:
    from ase.data import atomic_numbers

    if symbol not in atomic_numbers:
        raise TrajectoryError(f"{source}: unknown element {symbol!r}")
    return atomic_numbers[symbol]


# --- vasprun


def read_vasprun(path: str | Path) -> Trajectory:
    """Stream the ionic steps of a vasprun.xml (gzipped or not): positions, cells, energies, T."""
    path = Path(path)
    symbols: list[str] = []
    incar: dict[str, str] = {}
    frac, cells, energies, kinetic = [], [], [], []
    with _open_binary(path) as fh:
        try:
            context = ET.iterparse(fh, events=("start", "end"))
            _, root = next(context)
            for event, elem in context:
                if event != "end":
                    continue
                if elem.tag == "incar":
                    incar = {i.get("name"): (i.text or "").strip() for i in elem.iter("i")}
                elif elem.tag == "atominfo":
                    symbols = [
                        rc.find("c").text.strip()
                        for rc in elem.iterfind("array[@name='atoms']/set/rc")
                    ]
                elif elem.tag == "calculation":
                    step = _vasprun_step(path, elem, len(frac) + 1)
                    for store, value in zip((frac, cells, energies, kinetic), step, strict=True):
                        store.append(value)
                    root.clear()
        except ET.ParseError as exc:
            raise TrajectoryError(
                f"{path}: frame {len(frac) + 1}: truncated or corrupt XML ({exc})"
            ) from None
        except (OSError, EOFError) as exc:
            raise TrajectoryError(
                f"{path}: frame {len(frac) + 1}: unreadable file ({exc})"
            ) from None
    if not frac:
        raise TrajectoryError(f"{path}: no ionic steps found (frame 1 is missing)")
    numbers = np.array([_atomic_number(path, s) for s in symbols])
    if len(numbers) != frac[0].shape[0]:
        raise TrajectoryError(
            f"{path}: frame 1: {frac[0].shape[0]} positions for {len(numbers)} atoms"
        )
    metadata: dict[str, Any] = {"format": "vasprun"}
    time_fs = None
    if "POTIM" in incar:
        metadata["frame_interval_fs"] = float(incar["POTIM"])
        time_fs = float(incar["POTIM"]) * np.arange(len(frac))
    if "TEBEG" in incar:
        metadata["temperature_K"] = float(incar["TEBEG"])
    temperatures = None
    if all(k is not None for k in kinetic):  # VASP counts 3N - 3 degrees of freedom
        temperatures = 2 * np.array(kinetic) / ((3 * len(numbers) - 3) * K_B_EV)
    return from_frames(
        numbers,
        np.array(frac),
        np.array(cells),
        time_fs=time_fs,
        metadata=metadata,
        energies=None if any(e is None for e in energies) else np.array(energies),
        temperatures=temperatures,
    )


def _vasprun_step(path: Path, calc: ET.Element, frame: int):
    basis = calc.find("structure/crystal/varray[@name='basis']")
    positions = calc.find("structure/varray[@name='positions']")
    if basis is None or positions is None:
        raise TrajectoryError(f"{path}: frame {frame}: the ionic step has no structure")
    try:
        cell = np.array([v.text.split() for v in basis], dtype=float)
        frac = np.array([v.text.split() for v in positions], dtype=float)
    except (ValueError, AttributeError):
        raise TrajectoryError(f"{path}: frame {frame}: unreadable cell or positions") from None
    if cell.shape != (3, 3) or frac.ndim != 2 or frac.shape[1] != 3:
        raise TrajectoryError(f"{path}: frame {frame}: malformed cell or positions")
    energy = {i.get("name"): i.text for i in calc.findall("energy/i")}
    e0 = energy.get("e_0_energy", energy.get("e_fr_energy"))
    kin = energy.get("kinetic")
    return frac, cell, None if e0 is None else float(e0), None if kin is None else float(kin)


# --- ASE, pymatgen


def read_ase(path: str | Path) -> Trajectory:
    """Read an ASE trajectory (.traj, extxyz, any format ``ase.io`` can stream)."""
    from ase.io import iread

    path = Path(path)
    return from_ase(iread(str(path), index=":"), source=path)


def from_ase(images: Iterable, source: str | Path = "ASE images") -> Trajectory:
    """Convert ASE ``Atoms`` frames (positions wrapped or not) to an unwrapped ``Trajectory``."""
    frac, cells, energies, temperatures = [], [], [], []
    numbers = None
    frames = iter(images)
    while True:
        frame = len(frac) + 1
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except Exception as exc:  # ase raises assorted types on damaged files
            raise TrajectoryError(
                f"{source}: frame {frame}: unreadable ({type(exc).__name__}: {exc})"
            ) from None
        if numbers is None:
            numbers = atoms.numbers.copy()
        elif not np.array_equal(atoms.numbers, numbers):
            raise TrajectoryError(
                f"{source}: frame {frame}: the atoms differ from those of frame 1"
            )
        if atoms.cell.rank != 3:
            raise InputError(f"{source}: frame {frame}: not a periodic 3D cell")
        frac.append(atoms.cell.scaled_positions(atoms.positions))
        cells.append(atoms.cell.array.copy())
        energies.append(_ase_energy(atoms))
        temperatures.append(atoms.get_temperature() if "momenta" in atoms.arrays else None)
    if not frac:
        raise TrajectoryError(f"{source}: no frames found (frame 1 is missing)")
    return from_frames(
        numbers,
        np.array(frac),
        np.array(cells),
        metadata={"format": "ase"},
        energies=None if None in energies else np.array(energies),
        temperatures=None if None in temperatures else np.array(temperatures),
    )


def _ase_energy(atoms) -> float | None:
    if atoms.calc is None:
        return None
    try:
        return float(atoms.get_potential_energy())
    except NotImplementedError:  # a stored calculator without an energy
        return None


def from_pymatgen(traj) -> Trajectory:
    """Convert a periodic pymatgen ``Trajectory`` (fractional coordinates or displacements)."""
    if traj.lattice is None:
        raise InputError("the pymatgen trajectory has no lattice (molecules are not supported)")
    coords = np.array(traj.coords, dtype=float)
    if traj.coords_are_displacement:
        coords = np.asarray(traj.base_positions, dtype=float) + np.cumsum(coords, axis=0)
    cells = np.asarray(traj.lattice, dtype=float)
    source = "pymatgen trajectory"
    numbers = [_atomic_number(source, str(getattr(s, "element", s))) for s in traj.species]
    metadata: dict[str, Any] = {"format": "pymatgen"}
    time_fs = None
    if traj.time_step:
        metadata["frame_interval_fs"] = float(traj.time_step)
        time_fs = float(traj.time_step) * np.arange(len(coords))
    energies = None
    props = traj.frame_properties
    if props and all("energy" in p for p in props):
        energies = np.array([p["energy"] for p in props], dtype=float)
    return from_frames(
        numbers, coords, cells, time_fs=time_fs, metadata=metadata, energies=energies
    )


# --- files


@contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """Open a file for reading, transparently gunzipping it (detected by its magic bytes)."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as fh:
        yield fh


@contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    with _open_binary(path) as fh:
        yield io.TextIOWrapper(fh, encoding="utf-8", errors="replace")
