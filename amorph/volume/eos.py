"""P(V) of the volume search (MPMorph): fits, bracketing, the next volume, rescaling.

Pure functions on (volume, mean pressure) points: a Birch–Murnaghan P(V) fit, the bracketing test,
the next volume to sample, and the rescaling rule of the check run. The flows in
:mod:`amorph.flows.volume` chain MD jobs around them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from monty.json import MSONable
from scipy.optimize import OptimizeWarning, brentq, curve_fit

from amorph.constants import EV_A3_TO_GPA, K_B_EV
from amorph.errors import VolumeSearchError

GRUNEISEN = 2 / 3
"""Grüneisen parameter of the thermal-pressure model that centres volume searches: with it the
virial part of the thermal pressure equals the kinetic pressure N k_B T / V."""


@dataclass
class EOSPoint(MSONable):
    """One NVT run of the volume search, reduced to its averages."""

    volume_A3: float
    pressure_GPa: float
    pressure_sem_GPa: float
    temperature_K: float
    energy_eV_per_atom: float
    trajectory_path: str


@dataclass
class EOSFit(MSONable):
    """A P(V) fit: ``kind`` is "birch-murnaghan-3", "birch-murnaghan-2" (B0' = 4) or "linear"."""

    kind: str
    v0_A3: float
    b0_GPa: float
    b0_prime: float
    rms_residual_GPa: float

    def pressure(self, volume: np.ndarray | float) -> np.ndarray | float:
        """The pressure (GPa) at ``volume`` on the fitted curve."""
        if self.kind == "linear":
            return self.b0_GPa * (1 - np.asarray(volume) / self.v0_A3)
        return birch_murnaghan_pressure(volume, self.v0_A3, self.b0_GPa, self.b0_prime)

    def bulk_modulus(self, volume: float) -> float:
        """The fit's -V dP/dV at ``volume``, in GPa."""
        step = 1e-4 * volume
        return float(
            -volume * (self.pressure(volume + step) - self.pressure(volume - step)) / step / 2
        )


def birch_murnaghan_pressure(volume, v0: float, b0: float, b0_prime: float):
    """Third-order Birch–Murnaghan pressure P(V) in the units of ``b0``."""
    eta = (v0 / np.asarray(volume, dtype=float)) ** (1 / 3)
    return 1.5 * b0 * (eta**7 - eta**5) * (1 + 0.75 * (b0_prime - 4) * (eta**2 - 1))


def fit_pressure_eos(volumes, pressures) -> EOSFit:
    """Fit P(V): Birch–Murnaghan (third order from four points, B0' = 4 from three), else linear.

    The linear fit P = B0 (1 − V/V0) is the fallback when the Birch–Murnaghan fit fails or is
    unphysical (B0 ≤ 0, as when noise makes P rise with V).
    """
    volumes = np.asarray(volumes, dtype=float)
    pressures = np.asarray(pressures, dtype=float)
    if len(volumes) < 2:
        raise VolumeSearchError("a P(V) fit needs at least two volumes")
    slope, intercept = np.polyfit(volumes, pressures, 1)
    linear = _linear_fit(volumes, pressures, slope, intercept)
    if len(volumes) < 3 or slope >= 0:
        return linear
    v_guess = float(np.clip(-intercept / slope, 0.5 * volumes.min(), 2.0 * volumes.max()))
    b_guess = float(max(-slope * v_guess, 1e-3))
    third_order = len(volumes) >= 4
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            if third_order:
                params, _ = curve_fit(
                    birch_murnaghan_pressure,
                    volumes,
                    pressures,
                    p0=(v_guess, b_guess, 4.0),
                    bounds=([0.2 * volumes.min(), 1e-4, 1.0], [5 * volumes.max(), 1e4, 20.0]),
                    maxfev=20000,
                )
            else:
                params, _ = curve_fit(
                    lambda v, v0, b0: birch_murnaghan_pressure(v, v0, b0, 4.0),
                    volumes,
                    pressures,
                    p0=(v_guess, b_guess),
                    bounds=([0.2 * volumes.min(), 1e-4], [5 * volumes.max(), 1e4]),
                    maxfev=20000,
                )
                params = (*params, 4.0)
    except (RuntimeError, ValueError):
        return linear
    fit = EOSFit(
        kind="birch-murnaghan-3" if third_order else "birch-murnaghan-2",
        v0_A3=float(params[0]),
        b0_GPa=float(params[1]),
        b0_prime=float(params[2]),
        rms_residual_GPa=0.0,
    )
    fit.rms_residual_GPa = _rms(fit, volumes, pressures)
    return fit if fit.rms_residual_GPa <= linear.rms_residual_GPa * 1.5 else linear


def _linear_fit(volumes, pressures, slope: float, intercept: float) -> EOSFit:
    v0 = -intercept / slope if slope != 0 else float("inf")
    fit = EOSFit(
        kind="linear",
        v0_A3=float(v0),
        b0_GPa=float(intercept),
        b0_prime=float("nan"),
        rms_residual_GPa=0.0,
    )
    fit.rms_residual_GPa = _rms(fit, volumes, pressures)
    return fit


def _rms(fit: EOSFit, volumes, pressures) -> float:
    return float(np.sqrt(np.mean((fit.pressure(volumes) - pressures) ** 2)))


def is_bracketed(pressures) -> bool:
    """True when the sampled pressures include both signs, so zero pressure lies between samples."""
    pressures = np.asarray(pressures, dtype=float)
    return bool(pressures.min() <= 0 <= pressures.max())


def zero_pressure_volume(volumes, pressures, fit: EOSFit) -> float:
    """The volume of zero pressure between the two samples that bracket it."""
    order = np.argsort(volumes)
    v = np.asarray(volumes, dtype=float)[order]
    p = np.asarray(pressures, dtype=float)[order]
    for i in range(len(v) - 1):
        if p[i] >= 0 >= p[i + 1] or p[i] <= 0 <= p[i + 1]:
            lo, hi = v[i], v[i + 1]
            if np.sign(fit.pressure(lo)) != np.sign(fit.pressure(hi)):
                return float(brentq(lambda x: float(fit.pressure(x)), lo, hi))
            if p[i] == p[i + 1]:
                return float(0.5 * (lo + hi))
            return float(lo + (hi - lo) * p[i] / (p[i] - p[i + 1]))
    raise VolumeSearchError("zero pressure is not bracketed by the sampled volumes")


def next_volume(
    volumes,
    pressures,
    fit: EOSFit,
    min_step: float = 0.05,
    max_step: float = 0.4,
    overshoot: float = 0.1,
) -> float:
    """The next volume to sample when zero pressure is not yet bracketed.

    Moves beyond the largest volume when every pressure is positive (beyond the smallest when every
    pressure is negative), to the fit's V0 pushed ``overshoot`` further (MPMorph's buffer, so that
    the new point lands past zero pressure despite the fit's error), but by a factor between
    ``1 + min_step`` and ``1 + max_step`` from the sampled edge.
    """
    volumes = np.asarray(volumes, dtype=float)
    pressures = np.asarray(pressures, dtype=float)
    target = fit.v0_A3 if np.isfinite(fit.v0_A3) and fit.v0_A3 > 0 else np.nan
    if pressures.min() > 0:
        edge = volumes.max()
        lo, hi = edge * (1 + min_step), edge * (1 + max_step)
        return float(np.clip(target * (1 + overshoot) if target > edge else hi, lo, hi))
    edge = volumes.min()
    lo, hi = edge / (1 + max_step), edge / (1 + min_step)
    return float(np.clip(target / (1 + overshoot) if target < edge else lo, lo, hi))


def thermal_pressure(
    temperature: float, volume_per_atom: float, gruneisen: float = GRUNEISEN, convention="virial"
) -> float:
    """Mie–Grüneisen thermal pressure (GPa) of a classical system at ``temperature`` (K): 3γ k_B T/v
    in total, (3γ − 1) k_B T/v without the kinetic term (``convention`` "virial")."""
    factor = 3 * gruneisen - (1 if convention == "virial" else 0)
    return factor * K_B_EV * temperature / volume_per_atom * EV_A3_TO_GPA


def quenched_volume(
    fit: EOSFit,
    hot_volume: float,
    hot_temperature: float,
    temperature: float,
    n_atoms: int,
    gruneisen: float = GRUNEISEN,
    convention: str = "virial",
) -> float:
    """Zero-pressure volume at ``temperature`` predicted from the P(V) fit at ``hot_temperature``,
    whose zero-pressure volume is ``hot_volume``.

    Cooling by ΔT at fixed V lowers the pressure by the :func:`thermal_pressure` of ΔT. The root of
    ``fit.pressure(V)`` minus that drop is searched between 0.4 and 1 times ``hot_volume`` (clipped
    to that range). A linear fit has no curvature to extrapolate with: it is replaced by a
    Birch–Murnaghan P(V) with B0' = 4, zero at ``hot_volume`` with the linear fit's bulk modulus
    there (``hot_volume`` itself where that modulus is not positive).
    """
    if fit.kind == "linear":
        modulus = fit.bulk_modulus(hot_volume)
        if not modulus > 0:
            return hot_volume
        fit = EOSFit("birch-murnaghan-2", hot_volume, modulus, 4.0, fit.rms_residual_GPa)
    cooling = hot_temperature - temperature

    def pressure(volume: float) -> float:
        drop = thermal_pressure(cooling, volume / n_atoms, gruneisen, convention)
        return float(fit.pressure(volume)) - drop

    low, high = 0.4 * hot_volume, hot_volume
    if pressure(high) >= 0:
        return high
    if pressure(low) <= 0:
        return low
    return float(brentq(pressure, low, high))


def rescaled_volume(
    volume: float, pressure: float, bulk_modulus: float, max_change: float = 0.1
) -> float:
    """Volume expected to bring ``pressure`` to zero, ΔV/V = P/B, limited to ``max_change``."""
    if not np.isfinite(bulk_modulus) or bulk_modulus <= 0:
        bulk_modulus = abs(pressure) / max_change if pressure else 1.0
    change = float(np.clip(pressure / bulk_modulus, -max_change, max_change))
    return volume * (1 + change)


def plot_eos(points: list[EOSPoint], fit: EOSFit, v0: float, path, title: str = "") -> None:
    """Save the sampled P(V) points with error bars, the fit and the chosen volume as a PNG."""
    from amorph.analysis.plots import figure, save

    volumes = np.array([p.volume_A3 for p in points])
    fig, ax = figure(5, 3.6)
    ax.errorbar(
        volumes,
        [p.pressure_GPa for p in points],
        yerr=[p.pressure_sem_GPa for p in points],
        fmt="o",
        label="MD averages",
    )
    grid = np.linspace(volumes.min() * 0.97, volumes.max() * 1.03, 200)
    ax.plot(grid, fit.pressure(grid), "-", label=f"{fit.kind} fit")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(v0, color="k", ls="--", lw=0.8, label=f"V0 = {v0:.1f} Å³")
    ax.set_xlabel("volume (Å³)")
    ax.set_ylabel("pressure (GPa)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    save(fig, path)
