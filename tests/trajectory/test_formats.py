"""Trajectory readers: unwrapping in triclinic cells, all formats, clear errors on damaged files."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest
from builders import NA_XDATCAR

from amorph.analysis.synthetic import random_walk
from amorph.errors import InputError, TrajectoryError
from amorph.trajectory import Trajectory
from amorph.trajectory.formats import from_pymatgen, read_trajectory, write_xdatcar

TRICLINIC = np.array([[6.0, 0.0, 0.0], [2.5, 5.5, 0.0], [-1.5, 2.0, 5.0]])


@pytest.fixture(scope="module")
def walk() -> Trajectory:
    """Fast walkers in a small triclinic cell: they cross the boundaries many times."""
    return random_walk({"Li": 6, "O": 4}, {"Li": 5e-3, "O": 1e-3}, 300, cell=TRICLINIC, seed=3)


def assert_same_motion(read: Trajectory, original: Trajectory) -> None:
    """Same atoms and displacements from the first frame (the reader keeps frame 0 wrapped)."""
    assert np.array_equal(read.numbers, original.numbers)
    assert np.allclose(read.cells, original.cells, atol=1e-6)
    moved = original.positions - original.positions[0]
    assert np.abs(moved).max() > 10.0  # the walkers crossed the cell (heights 5 Å) several times
    assert np.allclose(read.positions - read.positions[0], moved, atol=1e-5)


@pytest.mark.parametrize("name", ["XDATCAR", "run.xdatcar.gz"])
def test_xdatcar_round_trip_unwraps_triclinic(tmp_path, walk, name):
    path = write_xdatcar(walk, tmp_path / name)
    traj = read_trajectory(path, time_step_fs=2.0, temperature_K=900)
    assert_same_motion(traj, walk)
    assert np.allclose(np.diff(traj.time_fs), 2.0)
    assert traj.metadata["temperature_K"] == 900


def test_variable_cell_xdatcar_keeps_each_frame_cell(tmp_path, walk):
    scale = np.linspace(1.0, 1.05, walk.n_frames)
    frac = np.einsum("fak,kj->faj", walk.positions, np.linalg.inv(TRICLINIC))
    cells = scale[:, None, None] * TRICLINIC
    breathing = Trajectory(
        walk.numbers, np.einsum("faj,fjk->fak", frac, cells), cells, walk.time_fs
    )
    traj = read_trajectory(write_xdatcar(breathing, tmp_path / "XDATCAR"))
    assert np.allclose(traj.cells, cells, atol=1e-6)
    assert np.isnan(traj.time_fs).all()  # an XDATCAR does not record time
    assert np.abs(np.diff(traj.positions, axis=0)).max() < 2.5  # no jump by a cell vector


def test_truncated_xdatcar_names_file_and_frame(tmp_path, walk):
    path = write_xdatcar(walk.slice(0, 10), tmp_path / "XDATCAR")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-3]))  # frame 10 loses its last three atoms
    with pytest.raises(TrajectoryError, match=r"XDATCAR: frame 10 is truncated"):
        read_trajectory(path)


def test_corrupt_xdatcar_coordinates_name_the_frame(tmp_path, walk):
    path = write_xdatcar(walk.slice(0, 10), tmp_path / "XDATCAR")
    lines = path.read_text().splitlines(keepends=True)
    lines[7 + 3 * 11 + 2] = "  0.1  oops  0.3\n"  # an atom line of frame 4
    path.write_text("".join(lines))
    with pytest.raises(TrajectoryError, match=r"XDATCAR: frame 4: unreadable coordinates"):
        read_trajectory(path)


def test_cut_gzip_is_a_trajectory_error(tmp_path, walk):
    path = write_xdatcar(walk, tmp_path / "XDATCAR.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TrajectoryError, match=r"XDATCAR.gz: frame \d+"):
        read_trajectory(path)


def _vasprun_text(traj: Trajectory, potim: float = 1.5, tebeg: float = 1200.0) -> str:
    atoms = "".join(f"<rc><c>{s}</c><c>1</c></rc>" for s in traj.symbols)
    steps = []
    for f in range(traj.n_frames):
        frac = np.linalg.solve(traj.cells[f].T, traj.positions[f].T).T % 1.0
        basis = "".join(f"<v>{' '.join(map(str, v))}</v>" for v in traj.cells[f])
        pos = "".join(f"<v>{' '.join(f'{x:.10f}' for x in v)}</v>" for v in frac)
        steps.append(
            f'<calculation><structure><crystal><varray name="basis">{basis}</varray></crystal>'
            f'<varray name="positions">{pos}</varray></structure>'
            f'<energy><i name="e_fr_energy">{-f - 0.5}</i><i name="e_0_energy">{-f}</i>'
            f'<i name="kinetic">1.0</i></energy></calculation>'
        )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling><incar>'
        f'<i name="POTIM">{potim}</i><i name="TEBEG">{tebeg}</i></incar>'
        f'<atominfo><array name="atoms"><set>{atoms}</set></array></atominfo>'
        + "".join(steps)
        + "</modeling>\n"
    )


def test_vasprun_gz_reads_positions_energies_time_and_temperature(tmp_path, walk):
    part = walk.slice(0, 40)
    path = tmp_path / "vasprun.xml.gz"
    path.write_bytes(gzip.compress(_vasprun_text(part).encode()))
    traj = read_trajectory(path)
    assert np.allclose(
        traj.positions - traj.positions[0], part.positions - part.positions[0], atol=1e-6
    )
    assert np.allclose(np.diff(traj.time_fs), 1.5)
    assert traj.metadata["temperature_K"] == 1200.0
    assert np.allclose(traj.energies, -np.arange(40))  # e_0_energy, not the free energy
    assert traj.temperatures[0] == pytest.approx(2 * 1.0 / ((3 * 10 - 3) * 8.617333262e-5))


def test_truncated_vasprun_names_file_and_frame(tmp_path, walk):
    text = _vasprun_text(walk.slice(0, 5))
    cut = text.index("<calculation>", text.index("<calculation>") + 1) + 200  # inside frame 2
    path = tmp_path / "vasprun.xml"
    path.write_text(text[:cut])
    with pytest.raises(TrajectoryError, match=r"vasprun.xml: frame 2: truncated or corrupt XML"):
        read_trajectory(path)


@pytest.mark.parametrize("name", ["md.traj", "md.extxyz"])
def test_ase_formats_unwrap(tmp_path, walk, name):
    from ase import Atoms
    from ase.io import write

    frames = []
    for positions, cell in zip(walk.positions, walk.cells, strict=True):
        frames.append(Atoms(numbers=walk.numbers, positions=positions, cell=cell, pbc=True))
        frames[-1].wrap()
    write(tmp_path / name, frames)
    assert_same_motion(read_trajectory(tmp_path / name, time_step_fs=1.0), walk)


def test_truncated_ase_trajectory_names_file_and_frame(tmp_path, walk):
    from ase import Atoms
    from ase.io import write

    frames = [
        Atoms(numbers=walk.numbers, positions=p, cell=TRICLINIC, pbc=True)
        for p in walk.positions[:20]
    ]
    write(tmp_path / "md.traj", frames)
    data = (tmp_path / "md.traj").read_bytes()
    (tmp_path / "md.traj").write_bytes(data[: len(data) // 2])
    with pytest.raises(TrajectoryError, match=r"md.traj: frame \d+: unreadable"):
        read_trajectory(tmp_path / "md.traj")


def test_pymatgen_trajectory_with_displacements(walk):
    from pymatgen.core.trajectory import Trajectory as PmgTrajectory

    frac = np.einsum("fak,kj->faj", walk.positions, np.linalg.inv(TRICLINIC)) % 1.0
    pmg = PmgTrajectory(lattice=TRICLINIC, species=walk.symbols, coords=frac, time_step=2.0)
    pmg.to_displacements()
    traj = from_pymatgen(pmg)
    assert_same_motion(traj, walk)
    assert np.allclose(np.diff(traj.time_fs), 2.0)


def test_npz_from_amorph_flows(tmp_path, walk):
    walk.metadata["temperature_K"] = 1500.0
    path = walk.save(tmp_path / "md.npz")
    traj = read_trajectory(path)
    assert np.array_equal(traj.positions, walk.positions)
    assert traj.metadata["temperature_K"] == 1500.0


def test_bad_inputs_are_one_line_errors(tmp_path, walk):
    with pytest.raises(InputError, match="no such trajectory file"):
        read_trajectory(tmp_path / "missing.traj")
    (tmp_path / "notes.dat").write_text("hello\n")
    with pytest.raises(TrajectoryError, match=r"notes.dat: cannot tell the trajectory format"):
        read_trajectory(tmp_path / "notes.dat")
    path = write_xdatcar(walk.slice(0, 3), tmp_path / "XDATCAR")
    with pytest.raises(InputError, match="time step must be positive"):
        read_trajectory(path, time_step_fs=0)
    with pytest.raises(InputError, match="temperature must be positive"):
        read_trajectory(path, temperature_K=-5)


def test_analysis_imports_without_md_stack():
    code = (
        "import sys, amorph.analysis, amorph.commands.analyze\n"
        "heavy = ('torch', 'jobflow', 'atomate2', 'matplotlib.pyplot')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(
    not NA_XDATCAR.is_file(), reason=f"shared liquid-Na AIMD data not found at {NA_XDATCAR}"
)
def test_real_liquid_na_xdatcar():
    traj = read_trajectory(NA_XDATCAR, time_step_fs=2.0)
    assert (traj.n_frames, traj.n_atoms) == (2000, 100)
    assert set(traj.symbols) == {"Na"}
    assert np.allclose(traj.cells, np.eye(3) * 16.453212)
    # unwrapped: no frame-to-frame jump anywhere near a cell length, yet atoms leave the cell
    assert np.abs(np.diff(traj.positions, axis=0)).max() < 0.5
    frac = traj.positions @ np.linalg.inv(traj.cells[0])
    assert (frac.max() > 1.0) or (frac.min() < 0.0)
