"""MSD by FFT, the MSD covariance, calibrated diffusivity errors and the fit window."""

from __future__ import annotations

import numpy as np
import pytest
from builders import NA_XDATCAR

from amorph.analysis import analyze_trajectory, diffusivities, fit_window, mean_squared_displacement
from amorph.analysis.diffusion import MIN_DIFFUSIVE_MSD_A2, msd_covariance
from amorph.analysis.synthetic import random_walk, vibrating_solid
from amorph.errors import InputError
from amorph.trajectory import Trajectory


def test_fft_msd_equals_direct_all_origins_average():
    traj = random_walk(
        {"Li": 5, "O": 3}, {"Li": 1e-3, "O": 1e-4}, 120, seed=1, fixed_centre_of_mass=False
    )
    result = mean_squared_displacement(traj)
    weights = np.array([6.94] * 5 + [15.999] * 3)
    com = np.einsum("fak,a->fk", traj.positions, weights / weights.sum())
    x = traj.positions - com[:, None, :]
    for symbol, idx in (("Li", slice(0, 5)), ("O", slice(5, 8))):
        direct = [np.mean(np.sum((x[k:, idx] - x[:-k, idx]) ** 2, axis=2)) for k in range(1, 120)]
        assert np.allclose(result[symbol].msd_A2[1:], direct, rtol=1e-3)  # masses to 3 digits
    raw = mean_squared_displacement(traj, ["Li"], remove_drift=False)["Li"].msd_A2
    direct = [
        np.mean(np.sum((traj.positions[k:, :5] - traj.positions[:-k, :5]) ** 2, axis=2))
        for k in (1, 50, 119)
    ]
    assert np.allclose(raw[[1, 50, 119]], direct, rtol=1e-10)


def test_msd_covariance_matches_brute_force_sum_over_origins():
    n_frames, s2, k4 = 23, 0.7, 0.3

    def brute(i, j):  # Cov(d_i^2, d_j^2) = 2 s2^2 ov^2 + k4 ov summed over all pairs of origins
        total = 0.0
        for t in range(n_frames - i):
            for s in range(n_frames - j):
                ov = max(0, min(t + i, s + j) - max(t, s))
                total += 2 * s2**2 * ov**2 + k4 * ov
        return 3 * total / ((n_frames - i) * (n_frames - j))

    lags = np.array([1, 2, 5, 9, 12, 15, 20, 22])
    expected = np.array([[brute(i, j) for j in lags] for i in lags])
    assert np.allclose(msd_covariance(lags, n_frames, 1, s2, k4), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["ols", "gls"])
@pytest.mark.parametrize("hop_length_A", [None, 2.0], ids=["gaussian", "hopping"])
def test_sigma_matches_scatter_over_independent_runs(method, hop_length_A):
    """Reported sigma within a factor 1.5 of the scatter of D over 40 runs; mean D unbiased."""
    n_atoms, runs, D = 20, 40, 1e-4
    rng = np.random.default_rng(7)
    values, sigmas = [], []
    for _ in range(runs):
        traj = random_walk({"Li": n_atoms}, {"Li": D}, 1000, hop_length_A=hop_length_A, seed=rng)
        d = diffusivities(traj, method=method)["Li"]
        values.append(d.D_cm2_s)
        sigmas.append(d.D_sigma_cm2_s)
    values, sigmas = np.array(values), np.array(sigmas)
    scatter = values.std(ddof=1)
    expected = D * (1 - 1 / n_atoms)  # a fixed centre of mass takes 1/N of a lone species' MSD
    assert abs(values.mean() - expected) < 3 * scatter / np.sqrt(runs)
    assert 1 / 1.5 < np.sqrt(np.mean(sigmas**2)) / scatter < 1.5


def test_fit_window_skips_ballistic_regime():
    """Persistent velocities (correlation time 40 frames): the fit starts well after, D is right."""
    rng = np.random.default_rng(3)
    n_frames, n_atoms, phi = 6000, 30, np.exp(-1 / 40)
    velocity = np.empty((n_frames, n_atoms, 3))
    velocity[0] = rng.standard_normal((n_atoms, 3))
    noise = rng.standard_normal((n_frames, n_atoms, 3)) * np.sqrt(1 - phi**2)
    for t in range(1, n_frames):
        velocity[t] = phi * velocity[t - 1] + noise[t]
    positions = np.cumsum(velocity * 0.01, axis=0)  # Å per fs, unit variance per component
    traj = Trajectory(
        np.full(n_atoms, 3), positions, np.eye(3) * 50, np.arange(n_frames, dtype=float)
    )
    msd = mean_squared_displacement(traj, remove_drift=False)["Li"]
    start, _ = fit_window(msd)
    assert start >= 5 * 40
    d = diffusivities(traj, remove_drift=False)["Li"]
    exact = 0.01**2 * (1 + phi) / (1 - phi) / 2 * 0.1  # sum of AR(1) velocity correlations, cm²/s
    assert abs(d.D_cm2_s - exact) < 3 * d.D_sigma_cm2_s
    assert 0.9 < d.msd_exponent < 1.1


def test_diffusivity_errors_are_clear():
    traj = random_walk({"Li": 4}, {"Li": 1e-4}, 50, seed=0)
    with pytest.raises(InputError, match="species Na not in"):
        diffusivities(traj, ["Na"])
    with pytest.raises(InputError, match="fit window"):
        diffusivities(traj, fit_start_ps=0.04, fit_end_ps=0.01)
    with pytest.raises(InputError, match="too few"):
        diffusivities(traj.slice(0, 6))
    with pytest.raises(InputError, match="fit method"):
        diffusivities(traj, method="mcmc")
    traj.time_fs = np.full(traj.n_frames, np.nan)
    traj.metadata["source"] = "XDATCAR"
    with pytest.raises(InputError, match="XDATCAR: the time between frames is unknown"):
        diffusivities(traj)


@pytest.mark.skipif(
    not NA_XDATCAR.is_file(), reason=f"shared liquid-Na AIMD data not found at {NA_XDATCAR}"
)
def test_liquid_na_diffusivity():
    """Single-species liquid (pymatgen's DiffusionAnalyzer fails): D(Na, 671 K) ~ 1e-4 cm²/s."""
    from amorph.analysis import read_trajectory

    d = diffusivities(read_trajectory(NA_XDATCAR, time_step_fs=2.0))["Na"]
    assert 3e-5 < d.D_cm2_s < 3e-4
    assert 0 < d.D_sigma_cm2_s < 0.3 * d.D_cm2_s
    assert (
        0.1 < d.fit_start_ps < d.fit_end_ps <= 2.0
    )  # after the ballistic regime, within half the run
    assert 0.8 < d.msd_exponent < 1.2
    assert d.diffusive and d.msd_reached_A2 > 3 * MIN_DIFFUSIVE_MSD_A2  # 15.8 Å² by 2 ps


def test_random_walks_are_diffusive_even_with_few_atoms():
    """30 walks of 2 atoms: the noisy exponent (sigma ~0.16) never condemns them."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        d = diffusivities(random_walk({"Li": 2, "O": 30}, {"Li": 1e-3, "O": 1e-3}, 600, seed=rng))
        assert d["Li"].diffusive, d["Li"].non_diffusive_reason
        assert 0.1 < d["Li"].msd_exponent_sigma < 0.25
    d = d["O"]  # 30 atoms: the MSD at the window end is 6 D t (1 - 1/N) within the noise
    end_fs = d.fit_end_ps * 1000
    assert d.msd_reached_A2 == pytest.approx(6 * 1e-2 * end_fs * (1 - 1 / 32), rel=0.15)
    row = d.as_dict()
    assert row["diffusive"] is True and row["non_diffusive_reason"] is None
    assert row["msd_reached_A2"] == d.msd_reached_A2 and "msd" not in row


def test_caged_solid_is_not_diffusive():
    """Vibrations of 0.3 Å RMS: a plateau of 6 x 0.09 Å², far below 4 Å²; D is not a diffusivity."""
    d = diffusivities(vibrating_solid({"Li": 20, "O": 10}, 2000, amplitude_A=0.3, seed=1))
    for species in ("Li", "O"):
        assert not d[species].diffusive
        assert d[species].msd_reached_A2 == pytest.approx(6 * 0.3**2, rel=0.15)
        assert abs(d[species].msd_exponent) < 0.3
        assert "MSD reaches only" in d[species].non_diffusive_reason
        assert d[species].as_dict()["diffusive"] is False


def test_wide_cage_is_caught_by_the_exponent():
    """1.5 Å RMS vibrations reach 13 Å², beyond the displacement threshold, yet the MSD is flat."""
    d = diffusivities(vibrating_solid({"Li": 20}, 2000, amplitude_A=1.5, seed=2))["Li"]
    assert d.msd_reached_A2 > 3 * MIN_DIFFUSIVE_MSD_A2
    assert not d.diffusive and "exponent" in d.non_diffusive_reason


def test_conductivity_only_for_given_charges():
    """LiCuSi2 (an intermetallic): no Cu or Si conductivity unless a charge is given."""
    traj = random_walk(
        {"Li": 8, "Cu": 8, "Si": 16}, {"Li": 1e-3, "Cu": 1e-4, "Si": 1e-4}, 300, seed=6
    )
    traj.metadata["temperature_K"] = 1500.0
    assert analyze_trajectory(traj, rdf_r_max=None).conductivity == {}
    report = analyze_trajectory(traj, charges={"Li": 1.0, "Na": 1.0}, rdf_r_max=None)
    assert set(report.conductivity) == {"Li"} and report.charges == {"Li": 1.0}
    rows = {row["species"]: row for row in report.as_dict()["species"]}
    assert rows["Li"]["charge"] == 1.0 and "conductivity_mS_cm" not in rows["Cu"]
