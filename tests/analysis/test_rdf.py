"""RDFs from all periodic images: ideal gas, lattices, variable volume, R² comparison, liquid Na."""

from __future__ import annotations

import numpy as np
import pytest
from builders import NA_XDATCAR

from amorph.analysis import radial_distribution, rdf_r2
from amorph.analysis.rdf import cell_heights
from amorph.errors import InputError
from amorph.trajectory import Trajectory

SKEWED = np.array([[4.0, 0.0, 0.0], [2.2, 3.6, 0.0], [1.1, -1.4, 3.9]])


def ideal_gas(cells: np.ndarray, counts=(("Li", 30), ("O", 20)), seed: int = 0) -> Trajectory:
    """Uniform random atoms, independently in every frame."""
    from ase.data import atomic_numbers

    rng = np.random.default_rng(seed)
    numbers = [atomic_numbers[s] for s, n in counts for _ in range(n)]
    frac = rng.random((len(cells), len(numbers), 3))
    positions = np.einsum("faj,fjk->fak", frac, cells)
    return Trajectory(numbers, positions, cells, np.arange(len(cells), dtype=float))


def test_ideal_gas_in_small_triclinic_cell_beyond_half_height():
    cells = np.broadcast_to(SKEWED, (300, 3, 3))
    r_max = 6.0
    assert r_max > 1.5 * cell_heights(SKEWED).max()  # far beyond where the minimum image works
    g = radial_distribution(ideal_gas(cells), r_max=r_max, bin_width=0.25, stride=1)
    window = g.r > 1.0
    for pair, values in {**g.partials, ("all", "all"): g.total}.items():
        # 1 up to 1/N finite-size terms (and an atom's own images at the lattice-vector lengths)
        assert np.mean(values[window]) == pytest.approx(1.0, abs=0.03), pair
        assert np.median(np.abs(values[window] - 1)) < 0.05, pair


def test_variable_volume_is_normalised_per_frame():
    scale = np.where(np.arange(300) % 2 == 0, 1.0, 1.4)  # every other frame 2.7x the volume
    g = radial_distribution(
        ideal_gas(scale[:, None, None] * SKEWED), r_max=5.0, bin_width=0.25, stride=1
    )
    assert np.max(np.abs(g.total[g.r > 1.0] - 1)) < 0.05


def simple_cubic(a: float, reps: int, cell_vectors: np.ndarray, jitter: float = 0.02) -> Trajectory:
    """A simple cubic crystal (lattice constant a) in the given supercell, slightly thermalised."""
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(*[np.arange(reps)] * 3, indexing="ij"), axis=-1).reshape(-1, 3) * a
    frac = np.linalg.solve(cell_vectors.T, grid.T).T % 1.0
    sites = np.unique(np.round(frac, 6), axis=0) @ cell_vectors
    positions = sites[None] + jitter * rng.standard_normal((3, len(sites), 3))
    return Trajectory(np.full(len(sites), 11), positions, cell_vectors, np.arange(3, dtype=float))


@pytest.mark.parametrize(
    "cell",
    [np.eye(3) * 6.0, np.array([[6.0, 0, 0], [2.0, 2.0, 0], [0, 4.0, 4.0]])],
    ids=["cubic", "sheared"],
)
def test_simple_cubic_first_shell_has_six_neighbours(cell):
    traj = simple_cubic(2.0, 3, cell)
    assert traj.n_atoms == round(abs(np.linalg.det(cell)) / 2.0**3)
    g = radial_distribution(traj, r_max=5.0, bin_width=0.02)
    assert g.first_peak("Na", "Na") == pytest.approx(2.0, abs=0.05)
    assert 2.0 < g.first_minimum("Na", "Na") < 2.0 * np.sqrt(2)
    assert g.coordination_number("Na", "Na") == pytest.approx(6.0, abs=1e-9)
    assert g.coordination_number("Na", "Na", r_cut=3.0) == pytest.approx(
        18.0, abs=1e-9
    )  # + 12 at a√2


def test_r2_comparison():
    cells = np.broadcast_to(SKEWED, (300, 3, 3))
    a = radial_distribution(ideal_gas(cells, seed=1), r_max=5.0, bin_width=0.1, stride=1)
    crystal = radial_distribution(simple_cubic(2.0, 3, np.eye(3) * 6.0), r_max=5.0, bin_width=0.1)
    same = rdf_r2(crystal, crystal)
    assert same["all"] == pytest.approx(1.0) and same["Na-Na"] == pytest.approx(1.0)
    assert rdf_r2(a, a)["Li-O"] == pytest.approx(1.0)
    noisy = radial_distribution(ideal_gas(cells, seed=2), r_max=5.0, bin_width=0.1, stride=1)
    assert rdf_r2(a, noisy)["all"] < 1.0


def test_rdf_rejects_bad_ranges():
    traj = ideal_gas(np.broadcast_to(SKEWED, (2, 3, 3)))
    with pytest.raises(InputError, match="bin width"):
        radial_distribution(traj, r_max=1.0, bin_width=2.0)


@pytest.mark.skipif(
    not NA_XDATCAR.is_file(), reason=f"shared liquid-Na AIMD data not found at {NA_XDATCAR}"
)
def test_liquid_na_first_peak_and_shell():
    from amorph.analysis import read_trajectory

    g = radial_distribution(read_trajectory(NA_XDATCAR))
    assert 3.5 < g.first_peak("Na", "Na") < 3.9  # liquid Na: first peak near 3.6-3.9 Å
    assert g.first_peak("Na", "Na") < g.first_minimum("Na", "Na") < 6.0
    assert 9 < g.coordination_number("Na", "Na") < 15  # close-packed-like liquid shell
    assert g.total[g.r < 2.0].max() == 0.0  # no two atoms closer than 2 Å
