"""Weighted Arrhenius fits with propagated errors, and Nernst–Einstein conductivities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import constants

from amorph.analysis import arrhenius_fit, nernst_einstein
from amorph.analysis.arrhenius import K_B_EV, fits_by_species, points_by_species
from amorph.analysis.plots import plot_arrhenius
from amorph.errors import InputError

TEMPERATURES = np.array([800.0, 1000.0, 1200.0, 1500.0])


def test_arrhenius_errors_match_scatter_of_repeated_fits():
    """Ea, ln D0 and ln D(300 K) scatter over noisy data sets as the reported sigmas say."""
    rng = np.random.default_rng(5)
    ea, d0, rel = 0.45, 2e-3, np.array([0.20, 0.10, 0.08, 0.05])
    truth = d0 * np.exp(-ea / (K_B_EV * TEMPERATURES))
    fits = []
    for _ in range(400):  # log-normal scatter; sigma_D proportional to D, as from MSD fits
        D = truth * np.exp(rel * rng.standard_normal(4))
        fits.append(arrhenius_fit(TEMPERATURES, D, D * rel))
    eas = np.array([f.Ea_eV for f in fits])
    ln_d300 = np.log([f.extrapolate(300.0)[0] for f in fits])
    fit = fits[0]
    assert abs(eas.mean() - ea) < 4 * fit.Ea_sigma_eV / np.sqrt(len(fits))
    assert eas.std() == pytest.approx(fit.Ea_sigma_eV, rel=0.15)
    d300, d300_sigma = fit.extrapolate(300.0)
    assert ln_d300.std() == pytest.approx(d300_sigma / d300, rel=0.15)
    ln_d0 = np.log([f.D0_cm2_s for f in fits])
    assert ln_d0.std() == pytest.approx(fit.D0_sigma_cm2_s / fit.D0_cm2_s, rel=0.15)
    summary = fit.as_dict()
    assert summary["D300K_cm2_s"] == pytest.approx(d300)
    assert {"Ea_eV", "Ea_sigma_eV", "D0_cm2_s", "D300K_sigma_cm2_s"} <= set(summary)


def test_arrhenius_weights_follow_sigma():
    """A wildly off point with a huge error bar barely moves the fit."""
    truth = 1e-3 * np.exp(-0.3 / (K_B_EV * TEMPERATURES))
    D = truth.copy()
    D[0] *= 5
    sigma = truth * np.array([10.0, 0.01, 0.01, 0.01])
    assert arrhenius_fit(TEMPERATURES, D, sigma).Ea_eV == pytest.approx(0.3, abs=0.005)


def test_arrhenius_needs_two_temperatures_with_positive_d():
    with pytest.raises(InputError, match="two or more temperatures"):
        arrhenius_fit([1000.0, 1200.0], [1e-5, -1e-6], [1e-6, 1e-6])
    with pytest.raises(InputError, match="two or more temperatures"):
        arrhenius_fit([1000.0, 1000.0], [1e-5, 2e-5], [1e-6, 1e-6])


def test_fits_by_species_skip_species_that_cannot_be_fitted(caplog):
    d = 1e-3 * np.exp(-0.3 / (K_B_EV * TEMPERATURES))
    rows = [("Li", t, di, 0.1 * di) for t, di in zip(TEMPERATURES, d, strict=True)]
    rows += [("O", 1000.0, 1e-6, 1e-7)]  # one temperature: no fit, and no complaint
    rows += [
        ("Si", 1000.0, 1e-6, 1e-7),
        ("Si", 1500.0, 0.0, 1e-7),
    ]  # D = 0 at one of two temperatures
    points = points_by_species(rows)
    assert points["Li"] == (list(TEMPERATURES), list(d), list(0.1 * d), [True] * 4)
    fits = fits_by_species(points)
    assert set(fits) == {"Li"} and fits["Li"].Ea_eV == pytest.approx(0.3, rel=1e-9)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["no Arrhenius fit for Si"]
    assert fits["Li"].as_dict()["n_non_diffusive_left_out"] == 0


def test_non_diffusive_points_are_left_out_and_counted(caplog, tmp_path):
    """A caged point far below the line would pull Ea up; it is left out, and the fit says so."""
    d = 1e-3 * np.exp(-0.3 / (K_B_EV * TEMPERATURES))
    caged = d * np.array([1e-3, 1, 1, 1])  # the coldest point: a vibrational "D"
    rows = [
        ("Li", t, di, 0.05 * di, i > 0)
        for i, (t, di) in enumerate(zip(TEMPERATURES, caged, strict=True))
    ]
    points = points_by_species(rows)
    fit = fits_by_species(points)["Li"]
    assert plot_arrhenius({"Li": fit}, points, tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert fit.Ea_eV == pytest.approx(0.3, rel=1e-9)
    assert fit.temperatures_K == list(TEMPERATURES[1:])
    summary = fit.as_dict()
    assert summary["n_non_diffusive_left_out"] == 1
    assert summary["non_diffusive_temperatures_K"] == [800.0]
    # without the flags the caged point is fitted and the activation energy is far off
    plain = fits_by_species(points_by_species(row[:4] for row in rows))["Li"]
    assert plain.Ea_eV > 0.5 and plain.non_diffusive_temperatures_K == []
    # only one diffusive temperature left: no fit, and a warning naming the left-out points
    rows = [("Na", 900.0, 1e-5, 1e-6, True), ("Na", 600.0, 1e-9, 1e-9, False)]
    assert fits_by_species(points_by_species(rows)) == {}
    assert "non-diffusive at 600 K" in caplog.records[-1].getMessage()


def test_nernst_einstein_conductivity():
    n, volume, D, T = 24, 1500.0, 3e-5, 900.0
    expected = (
        n / (volume * 1e-30) * constants.e**2 * D * 1e-4 / (constants.k * T) * 10
    )  # S/m -> mS/cm
    assert nernst_einstein(D, n, volume, T) == pytest.approx(expected, rel=1e-6)
    assert nernst_einstein(D, n, volume, T, charge=2) == pytest.approx(4 * expected, rel=1e-6)
    with pytest.raises(InputError):
        nernst_einstein(D, n, volume, 0.0)
