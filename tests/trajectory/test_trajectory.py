import numpy as np
import pytest

from amorph.errors import TrajectoryError
from amorph.trajectory import Trajectory


def _trajectory(n_frames=5, n_atoms=3, t0=0.0):
    rng = np.random.default_rng(n_frames)
    return Trajectory(
        numbers=[3, 3, 8][:n_atoms],
        positions=rng.normal(size=(n_frames, n_atoms, 3)),
        cells=np.eye(3) * 5,
        time_fs=t0 + 2.0 * np.arange(1, n_frames + 1),
        energies=rng.normal(size=n_frames),
        temperatures=np.full(n_frames, 300.0),
        virial_pressures=np.zeros(n_frames),
        kinetic_pressures=np.ones(n_frames),
        metadata={"temperature_K": 300.0},
    )


def test_round_trip(tmp_path):
    traj = _trajectory()
    loaded = Trajectory.load(traj.save(tmp_path / "t.npz"))
    assert np.array_equal(loaded.positions, traj.positions)
    assert np.allclose(loaded.volumes, 125.0)
    assert np.allclose(loaded.total_pressures, 1.0)
    assert loaded.metadata == {"temperature_K": 300.0}
    assert loaded.structure(-1).composition.reduced_formula == "Li2O"


def test_concatenate_and_slice():
    joined = Trajectory.concatenate([_trajectory(4), _trajectory(6, t0=8.0)])
    assert joined.n_frames == 10 and np.all(np.diff(joined.time_fs) == 2.0)
    assert joined.slice(2, None, 2).n_frames == 4


def test_truncated_file_is_reported_with_its_name(tmp_path):
    path = _trajectory().save(tmp_path / "t.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(TrajectoryError, match=r"t.npz"):
        Trajectory.load(path)


def test_shape_mismatch_is_rejected():
    with pytest.raises(TrajectoryError, match="positions"):
        Trajectory(
            numbers=[1, 1], positions=np.zeros((3, 4, 3)), cells=np.eye(3), time_fs=[1, 2, 3]
        )
