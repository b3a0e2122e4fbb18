"""The mean of a correlated time series (pressures, energies of an MD run) and its standard error.

Successive MD frames are correlated, so ``std / sqrt(n)`` understates the error of their mean.
:func:`sample_mean` averages blocks of consecutive values that are each at least
``BLOCK_TIMES`` integrated autocorrelation times long (so that block means are nearly independent),
with between ``MIN_BLOCKS`` and ``MAX_BLOCKS`` blocks, and takes the standard error from the scatter
of the block means, with ``blocks - 1`` degrees of freedom for Student's t.

The integrated autocorrelation time ``tau = 1 + 2 sum_t rho(t)`` (1 for independent values) is
summed up to the smallest window ``M >= 5 tau(M)`` (Sokal's automatic windowing). Short series
underestimate it; the floor of ``MIN_BLOCKS`` blocks keeps the error honest there. On AR(1) series
the t intervals cover the true mean 93-95 % of the time at 95 % confidence for 75 to 2000 values
and autocorrelation times up to 9, and 88 % for 75 values with an autocorrelation time of 19 (only
four independent values; see ``tests/test_timeseries.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import stats

WINDOW_FACTOR = 5.0  # Sokal's c: the window is c integrated times long
BLOCK_TIMES = 5.0
MIN_BLOCKS, MAX_BLOCKS = 5, 50


@dataclass(frozen=True)
class SampleMean:
    """A mean with its standard error and the degrees of freedom of that error."""

    mean: float
    sem: float
    dof: int

    def t_factor(self, confidence: float = 0.95) -> float:
        """Student's t quantile: the two-sided ``confidence`` interval is mean ± t · sem."""
        return float(stats.t.ppf(0.5 + confidence / 2, max(self.dof, 1)))


def autocorrelation(values: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation ``rho(t)`` of ``values`` for lags ``0 … n-1`` (FFT, biased
    estimator)."""
    x = np.asarray(values, dtype=float) - np.mean(values)
    n = len(x)
    n_fft = scipy.fft.next_fast_len(2 * n, real=True)
    spectrum = scipy.fft.rfft(x, n=n_fft)
    acf = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_fft)[:n]
    return acf / acf[0] if acf[0] > 0 else np.zeros(n)


def integrated_time(values: np.ndarray) -> float:
    """Integrated autocorrelation time in samples (at least 1), with Sokal's window."""
    if len(values) < 2:
        return 1.0
    taus = 2 * np.cumsum(autocorrelation(values)) - 1  # tau(M) for windows M = 0 … n-1
    inside = np.arange(len(taus)) >= WINDOW_FACTOR * taus
    window = int(np.argmax(inside)) if inside.any() else len(taus) - 1
    return float(max(taus[window], 1.0))


def sample_mean(values: np.ndarray) -> SampleMean:
    """The mean of a correlated series with its block-average standard error (see the module
    docstring). Fewer than ``2 * MIN_BLOCKS`` values: the naive error, NaN for one value."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2 * MIN_BLOCKS:
        sem = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        return SampleMean(float(values.mean()), sem, max(n - 1, 0))
    blocks = int(np.clip(n / (BLOCK_TIMES * integrated_time(values)), MIN_BLOCKS, MAX_BLOCKS))
    means = np.array([b.mean() for b in np.array_split(values, blocks)])
    return SampleMean(float(values.mean()), float(means.std(ddof=1) / np.sqrt(blocks)), blocks - 1)
