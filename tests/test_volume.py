import numpy as np
import pytest

from amorph.eos import (
    birch_murnaghan_pressure,
    fit_pressure_eos,
    is_bracketed,
    next_volume,
    rescaled_volume,
    zero_pressure_volume,
)


def test_fit_recovers_known_v0_from_noisy_birch_murnaghan_data():
    rng = np.random.default_rng(0)
    volumes = np.linspace(800, 1400, 6)
    pressures = birch_murnaghan_pressure(volumes, 1100.0, 40.0, 4.5) + rng.normal(
        0, 0.1, volumes.size
    )
    fit = fit_pressure_eos(volumes, pressures)
    assert fit.kind == "birch-murnaghan-3"
    assert fit.v0_A3 == pytest.approx(1100.0, rel=0.01)
    assert fit.b0_GPa == pytest.approx(40.0, rel=0.15)
    assert zero_pressure_volume(volumes, pressures, fit) == pytest.approx(1100.0, rel=0.01)


def test_three_points_fix_b0_prime():
    volumes = np.array([0.8, 1.0, 1.2]) * 1000
    fit = fit_pressure_eos(volumes, birch_murnaghan_pressure(volumes, 950.0, 30.0, 4.0))
    assert fit.kind == "birch-murnaghan-2" and fit.b0_prime == 4.0
    assert fit.v0_A3 == pytest.approx(950.0, rel=1e-4)


def test_pressure_rising_with_volume_falls_back_to_linear():
    fit = fit_pressure_eos([100, 110, 120], [1.0, 2.0, 3.0])
    assert fit.kind == "linear"


def test_bracketing_and_next_volume_moves_outward_within_bounds():
    volumes = np.array([800.0, 1000.0, 1200.0])
    positive = np.array([20.0, 9.0, 3.0])
    assert not is_bracketed(positive)
    assert is_bracketed([2.0, -1.0, -3.0])
    fit = fit_pressure_eos(volumes, positive)
    new = next_volume(volumes, positive, fit, min_step=0.05, max_step=0.25)
    assert 1200 * 1.05 <= new <= 1200 * 1.25
    negative = -positive[::-1]
    new = next_volume(
        volumes, negative, fit_pressure_eos(volumes, negative), min_step=0.05, max_step=0.25
    )
    assert 800 / 1.25 <= new <= 800 / 1.05


def test_zero_pressure_volume_lies_between_bracketing_samples():
    volumes, pressures = [900.0, 1000.0, 1100.0, 1300.0], [5.0, 2.0, -0.5, -2.0]
    v0 = zero_pressure_volume(volumes, pressures, fit_pressure_eos(volumes, pressures))
    assert 1000 < v0 < 1100


def test_rescale_expands_under_positive_pressure_and_is_bounded():
    assert rescaled_volume(1000, 2.0, 40.0) == pytest.approx(1050)
    assert rescaled_volume(1000, -2.0, 40.0) == pytest.approx(950)
    assert rescaled_volume(1000, 50.0, 40.0, max_change=0.1) == pytest.approx(1100)
