"""The standard error of correlated MD averages: calibrated on series whose answer is known."""

import numpy as np
import pytest
from scipy.signal import lfilter

from amorph.analysis.timeseries import integrated_time, sample_mean


def ar1(rng, n: int, phi: float, size: int) -> np.ndarray:
    """``size`` stationary AR(1) series of length ``n``: integrated time (1 + phi) / (1 - phi)."""
    noise = rng.normal(size=(size, n))
    noise[:, 0] /= np.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], noise, axis=1)


def test_independent_values_have_unit_time_and_the_naive_error():
    values = np.random.default_rng(0).normal(size=4000)
    assert integrated_time(values) == pytest.approx(1.0, abs=0.15)
    estimate = sample_mean(values)
    assert estimate.sem == pytest.approx(values.std(ddof=1) / np.sqrt(4000), rel=0.25)


def test_long_correlated_series_recover_the_integrated_time():
    series = ar1(np.random.default_rng(1), 20000, 0.9, 8)
    taus = [integrated_time(x) for x in series]
    assert np.mean(taus) == pytest.approx(19.0, rel=0.1)


@pytest.mark.parametrize(
    ("n", "phi"),
    [(2000, 0.9), (150, 0.8), (75, 0.7)],  # a paper-length run, a demo-length one, a short one
)
def test_t_intervals_cover_the_true_mean_as_often_as_they_claim(n, phi):
    series = ar1(np.random.default_rng(2), n, phi, 400)
    estimates = [sample_mean(x) for x in series]
    covered = [abs(e.mean) <= e.t_factor(0.95) * e.sem for e in estimates]
    assert 0.90 <= np.mean(covered) <= 0.985
    naive = [abs(x.mean()) <= 1.96 * x.std(ddof=1) / np.sqrt(n) for x in series]
    assert np.mean(naive) < 0.75  # what ignoring the correlation would claim


def test_too_short_series_fall_back_to_the_naive_error():
    assert np.isnan(sample_mean(np.array([1.0])).sem)
    estimate = sample_mean(np.array([1.0, 2.0, 3.0]))
    assert estimate.dof == 2 and estimate.sem == pytest.approx(1 / np.sqrt(3))
