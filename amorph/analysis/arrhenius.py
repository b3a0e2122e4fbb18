"""Arrhenius fits of D(T) and Nernst–Einstein conductivities.

Points whose MSD is not diffusive (``Diffusivity.diffusive``) are left out of the fits, and each
fit records at which temperatures (``ArrheniusFit.non_diffusive_temperatures_K``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from amorph.constants import ELEMENTARY_CHARGE_C, K_B_EV, K_B_J
from amorph.errors import InputError

logger = logging.getLogger(__name__)


@dataclass
class ArrheniusFit:
    """``ln D = ln D0 - Ea / (kB T)`` fitted to ln D weighted by ``sigma_lnD = sigma_D / D``.

    ``temperatures_K`` are the fitted points, ``non_diffusive_temperatures_K`` the ones left out
    because their MSD was not diffusive.
    """

    coefficients: np.ndarray  # (ln D0 with D0 in cm²/s, -Ea / kB in K)
    covariance: np.ndarray
    temperatures_K: list[float]
    reduced_chi2: float | None
    non_diffusive_temperatures_K: list[float] = field(default_factory=list)

    @property
    def Ea_eV(self) -> float:
        """Activation energy Ea (eV)."""
        return float(-self.coefficients[1] * K_B_EV)

    @property
    def Ea_sigma_eV(self) -> float:
        """1-sigma error of Ea (eV), from the fit covariance."""
        return float(np.sqrt(self.covariance[1, 1]) * K_B_EV)

    @property
    def D0_cm2_s(self) -> float:
        """Pre-exponential factor D0 (cm²/s)."""
        return float(np.exp(self.coefficients[0]))

    @property
    def D0_sigma_cm2_s(self) -> float:
        """1-sigma error of D0 (cm²/s), propagated from that of ln D0."""
        return self.D0_cm2_s * float(np.sqrt(self.covariance[0, 0]))

    def extrapolate(self, temperature_K: float) -> tuple[float, float]:
        """D and its 1-sigma error (cm²/s) at ``temperature_K``, from the fit covariance."""
        x = np.array([1.0, 1.0 / temperature_K])
        d = float(np.exp(x @ self.coefficients))
        return d, d * float(np.sqrt(x @ self.covariance @ x))

    def as_dict(self) -> dict:
        """JSON-ready summary, with D extrapolated to 300 K."""
        d300, d300_sigma = self.extrapolate(300.0)
        return {
            "Ea_eV": self.Ea_eV,
            "Ea_sigma_eV": self.Ea_sigma_eV,
            "D0_cm2_s": self.D0_cm2_s,
            "D0_sigma_cm2_s": self.D0_sigma_cm2_s,
            "D300K_cm2_s": d300,
            "D300K_sigma_cm2_s": d300_sigma,
            "reduced_chi2": self.reduced_chi2,
            "temperatures_K": self.temperatures_K,
            "n_non_diffusive_left_out": len(self.non_diffusive_temperatures_K),
            "non_diffusive_temperatures_K": self.non_diffusive_temperatures_K,
        }


class ArrheniusPoints(NamedTuple):
    """D(T) points of one species; ``diffusive[i]`` is False where the MSD was not diffusive."""

    temperatures_K: list[float]
    D_cm2_s: list[float]
    D_sigma_cm2_s: list[float]
    diffusive: list[bool]


def points_by_species(rows: Iterable[tuple]) -> dict[str, ArrheniusPoints]:
    """Points per species from rows ``(species, T, D, sigma_D)`` or ``(..., diffusive)``.

    Rows without the ``diffusive`` flag count as diffusive.
    """
    points: dict[str, ArrheniusPoints] = {}
    for species, temperature, d, sigma, *flag in rows:
        columns = points.setdefault(species, ArrheniusPoints([], [], [], []))
        values = (temperature, d, sigma, bool(flag[0]) if flag else True)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return points


def fits_by_species(points: dict[str, ArrheniusPoints]) -> dict[str, ArrheniusFit]:
    """An Arrhenius fit per species of ``points`` with two or more distinct temperatures.

    Non-diffusive points are left out and recorded in the fit; a species whose remaining points
    cannot be fitted (fewer than two temperatures, D ≤ 0) gets no fit and a warning.
    """
    fits = {}
    for species, (temperatures, d, sigma, diffusive) in points.items():
        if len(set(temperatures)) < 2:
            continue
        keep = np.flatnonzero(diffusive)
        left_out = sorted(float(t) for t, ok in zip(temperatures, diffusive, strict=True) if not ok)
        note = f" (non-diffusive at {', '.join(f'{t:g}' for t in left_out)} K)" if left_out else ""
        if len(keep) == 0:  # e.g. a glass former: expected, and shown in the per-stage flags
            logger.info("no Arrhenius fit for %s: not diffusive at any temperature", species)
            continue
        try:
            fit = arrhenius_fit(
                *(np.asarray(v, dtype=float)[keep] for v in (temperatures, d, sigma))
            )
        except InputError as exc:
            logger.warning("no Arrhenius fit for %s: %s%s", species, exc, note)
            continue
        if left_out:
            logger.info(
                "Arrhenius fit for %s leaves out %d point(s)%s", species, len(left_out), note
            )
        fit.non_diffusive_temperatures_K = left_out
        fits[species] = fit
    return fits


def arrhenius_fit(temperatures_K, D_cm2_s, D_sigma_cm2_s) -> ArrheniusFit:
    """Weighted least-squares fit of ln D against 1/T; errors from the covariance (absolute sigmas).

    Needs at least two distinct temperatures with D > 0 and sigma_D > 0. With more than two points
    the reduced chi² tells whether the sigmas and the Arrhenius form are consistent (about 1).
    """
    T, D, s = (np.asarray(v, dtype=float) for v in (temperatures_K, D_cm2_s, D_sigma_cm2_s))
    if not (T.shape == D.shape == s.shape):
        raise InputError("temperatures, diffusivities and their sigmas must have the same length")
    usable = (D > 0) & (s > 0) & (T > 0)
    if len(np.unique(T[usable])) < 2:
        raise InputError(
            "an Arrhenius fit needs positive diffusivities at two or more temperatures"
        )
    T, D, s = T[usable], D[usable], s[usable]
    design = np.column_stack([np.ones_like(T), 1.0 / T])
    weights = (D / s) ** 2  # 1 / sigma_lnD^2
    covariance = np.linalg.inv(design.T @ (design * weights[:, None]))
    beta = covariance @ design.T @ (weights * np.log(D))
    residual = np.log(D) - design @ beta
    dof = len(T) - 2
    return ArrheniusFit(
        coefficients=beta,
        covariance=covariance,
        temperatures_K=[float(t) for t in T],
        reduced_chi2=float(weights @ residual**2 / dof) if dof > 0 else None,
    )


def nernst_einstein(
    D_cm2_s: float, n_ions: int, volume_A3: float, temperature_K: float, charge: float = 1.0
) -> float:
    """Nernst–Einstein conductivity ``n q² D / (kB T)`` in mS/cm (uncorrelated ions)."""
    if not temperature_K > 0 or not volume_A3 > 0:
        raise InputError("the Nernst–Einstein conductivity needs a positive temperature and volume")
    density_m3 = n_ions / (volume_A3 * 1e-30)
    siemens_per_m = (
        density_m3
        * (charge * ELEMENTARY_CHARGE_C) ** 2
        * (D_cm2_s * 1e-4)
        / (K_B_J * temperature_K)
    )
    return siemens_per_m * 10.0  # 1 S/m = 10 mS/cm
