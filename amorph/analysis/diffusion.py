"""Mean-squared displacement and tracer diffusivity with a calibrated uncertainty.

MSD
    Per species, averaged over atoms and over *all* time origins, computed with FFTs
    (``MSD(k) = [S1(k) - 2 S2(k)] / (T - k)``, S2 the positional autocorrelation) in O(T log T), in
    blocks of atoms so that the extra memory stays a small fraction of the position array. The
    centre-of-mass drift (mass-weighted, all atoms) is removed first.

Fit window (defaults, both overridable)
    * end: half the run, so every lag has at least two independent (non-overlapping) windows per
      atom;
    * start: the latest of 5 % of the run and the end of the ballistic / caging regime, taken as
      the first lag after which the local log-log slope ``d ln MSD / d ln t`` (between lags a
      factor 2 apart, searched up to a quarter of the run) stays within 1 +- 0.15 beyond its
      statistical error.

Diffusivity and its uncertainty
    A straight-line fit ``MSD = 6 D t + c`` on up to 100 evenly spaced lags of the window. Its error
    comes from the covariance of the all-origins MSD estimator (closed form, ``msd_covariance``) for
    independent atoms whose per-frame increments are independent with variance ``2 D dt`` per
    Cartesian component and fourth cumulant ``k4`` (Bullerjahn et al., J. Chem. Phys. 153, 024116
    (2020); the covariance idea of kinisi, McCluskey et al., J. Chem. Theory Comput. 2024). ``D`` is
    the fitted one and ``k4`` is measured from the displacements at the start of the window, so
    heavy-tailed (hopping) motion widens the error bar; the drift removal counts as one atom less.

    ``method="ols"`` (default) propagates this covariance through ordinary least squares;
    ``method="gls"`` uses it as the weight (generalised least squares, iterated on ``D``). On random
    walks both are calibrated (sigma matches the scatter across independent runs, see the tests)
    and GLS is about twice as precise, but it draws most of its information from the start of the
    window: on real liquids, where the MSD is still curved there (velocity back-scattering), GLS
    follows the local slope (liquid Na at 671 K: D_GLS fell from 1.75e-4 to 1.20e-4 cm²/s as the
    start moved from 0.13 to 1 ps, while OLS stayed at 1.27-1.29e-4), so OLS is the robust default.

Is the motion diffusive? (``Diffusivity.diffusive``)
    A slope can be fitted to any MSD; it is a diffusivity only if the atoms have left their cages
    and the MSD grows linearly. Both are checked over the fit window:

    * displacement: the MSD at the end of the window must reach ``MIN_DIFFUSIVE_MSD_A2`` = 4 Å²,
      an RMS displacement of 2 Å, the scale of the shortest cation-anion bonds and site-to-site
      hops (Li-O 2.0 Å, Li-S 2.5 Å). Atoms vibrating in a solid stay far below it: by Lindemann's
      criterion their RMS amplitude is at most 0.1-0.15 of the neighbour distance (2-4 Å) up to
      melting, a 3D MSD plateau (twice the mean-square amplitude) of 0.1-0.7 Å²;
    * linearity: the log-log slope of the MSD across the window (``msd_exponent``) must lie within
      ``1 +- EXPONENT_TOLERANCE`` (0.3) up to three of its standard errors for a random walk of
      the same atom count and window (``msd_exponent_sigma``; ~0.1 for 4 atoms, so that a
      species with few atoms is not condemned for noise). Caged or sub-diffusive motion has
      exponents well below 1 (a plateau, 0), drift or ballistic flight up to 2.

    Non-diffusive D values are still reported (as upper bounds of a sort), but Arrhenius fits
    leave them out (``amorph.analysis.arrhenius.fits_by_species``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import scipy.fft
import scipy.linalg

from amorph.constants import A2_PER_FS_TO_CM2_PER_S
from amorph.errors import InputError
from amorph.trajectory import Trajectory

FIT_END_FRACTION = 0.5
FIT_START_MIN_FRACTION = 0.05
SLOPE_SEARCH_FRACTION = 0.25
SLOPE_TOLERANCE = 0.15
MIN_DIFFUSIVE_MSD_A2 = 4.0
EXPONENT_TOLERANCE = 0.3
MAX_FIT_POINTS = 100
FIT_METHODS = ("ols", "gls")
K4_SHRINK = 2.0
_BLOCK_BYTES = 16 * 2**20


@dataclass
class MSD:
    """All-origins mean-squared displacement of one species; ``msd_A2[k]`` at lag ``k`` frames."""

    species: str
    n_atoms: int
    frame_interval_fs: float
    msd_A2: np.ndarray
    n_independent: float  # atoms, less the degrees of freedom taken by the drift removal

    @property
    def lag_fs(self) -> np.ndarray:
        """Lag (fs) of each ``msd_A2`` entry."""
        return self.frame_interval_fs * np.arange(len(self.msd_A2))


@dataclass
class Diffusivity:
    """Tracer diffusivity of one species from a linear fit of its MSD over ``[fit_start, fit_end]``.

    ``msd_exponent`` is the log-log slope of the MSD across the window (about 1 when diffusive),
    ``msd_exponent_sigma`` its standard error for a random walk, ``msd_reached_A2`` the MSD at the
    end of the window; ``diffusive`` judges them as the module docstring says.
    """

    species: str
    n_atoms: int
    D_cm2_s: float
    D_sigma_cm2_s: float
    fit_start_ps: float
    fit_end_ps: float
    msd_exponent: float
    msd_exponent_sigma: float
    msd_reached_A2: float
    intercept_A2: float
    method: str
    msd: MSD = field(repr=False)

    @property
    def non_diffusive_reason(self) -> str | None:
        """Why the MSD is not diffusive over the fit window, or None when it is."""
        if not self.msd_reached_A2 >= MIN_DIFFUSIVE_MSD_A2:
            return f"MSD reaches only {self.msd_reached_A2:.2g} Å² (< {MIN_DIFFUSIVE_MSD_A2:g})"
        if not abs(self.msd_exponent - 1) <= EXPONENT_TOLERANCE + 3 * self.msd_exponent_sigma:
            return f"MSD exponent {self.msd_exponent:.2f} ± {self.msd_exponent_sigma:.2f} is not 1"
        return None

    @property
    def diffusive(self) -> bool:
        """Whether the MSD is diffusive over the fit window (no ``non_diffusive_reason``)."""
        return self.non_diffusive_reason is None

    def as_dict(self) -> dict:
        """JSON-ready summary (no arrays), with ``diffusive`` and ``non_diffusive_reason``."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "msd"}
        return row | {
            "diffusive": self.diffusive,
            "non_diffusive_reason": self.non_diffusive_reason,
        }


def frame_interval_fs(traj: Trajectory) -> float:
    """The constant time between frames; ``InputError`` if it is unknown or uneven."""
    source = traj.metadata.get("source", "trajectory")
    steps = np.diff(traj.time_fs)
    if traj.n_frames < 2:
        raise InputError(f"{source}: one frame only; diffusion needs at least two frames")
    if not np.all(np.isfinite(steps)):
        raise InputError(
            f"{source}: the time between frames is unknown; give a time step (--time-step, fs)"
        )
    if not np.allclose(steps, steps[0], rtol=1e-4) or steps[0] <= 0:
        raise InputError(f"{source}: frames are not evenly spaced in time")
    return float(steps[0])


def species_indices(traj: Trajectory, species: list[str] | None = None) -> dict[str, np.ndarray]:
    """Atom indices per species (all, in order of appearance, or the ones asked for)."""
    symbols = traj.symbols
    present = list(dict.fromkeys(symbols))
    unknown = [s for s in species or [] if s not in present]
    if unknown:
        source = traj.metadata.get("source", "the trajectory")
        raise InputError(
            f"species {', '.join(unknown)} not in {source} (it has {', '.join(present)})"
        )
    return {s: np.flatnonzero(np.array(symbols) == s) for s in (species or present)}


def mean_squared_displacement(
    traj: Trajectory, species: list[str] | None = None, remove_drift: bool = True
) -> dict[str, MSD]:
    """All-origins MSD per species by FFT, with the centre-of-mass drift removed."""
    dt = frame_interval_fs(traj)
    weights, drift = _drift(traj, remove_drift)
    return {
        symbol: _species_msd(traj, symbol, idx, weights, drift, dt)
        for symbol, idx in species_indices(traj, species).items()
    }


def diffusivities(
    traj: Trajectory,
    species: list[str] | None = None,
    fit_start_ps: float | None = None,
    fit_end_ps: float | None = None,
    remove_drift: bool = True,
    method: str = "ols",
) -> dict[str, Diffusivity]:
    """Tracer diffusivity per species (cm²/s) with a calibrated sigma; see the module docstring."""
    if method not in FIT_METHODS:
        raise InputError(f"unknown fit method {method!r}; choose one of {', '.join(FIT_METHODS)}")
    dt = frame_interval_fs(traj)
    weights, drift = _drift(traj, remove_drift)
    out = {}
    for symbol, idx in species_indices(traj, species).items():
        msd = _species_msd(traj, symbol, idx, weights, drift, dt)
        start, end = fit_window(msd, fit_start_ps, fit_end_ps)
        k4 = _excess_fourth_cumulant(traj, idx, drift, start)
        out[symbol] = fit_diffusivity(msd, start, end, k4_per_frame=k4, method=method)
    return out


def _species_msd(
    traj: Trajectory,
    symbol: str,
    idx: np.ndarray,
    weights: np.ndarray,
    drift: np.ndarray,
    dt: float,
) -> MSD:
    """``MSD(k) = [S1(k) - 2 S2(k)] / (T - k)`` with the autocorrelation S2 from summed spectra."""
    n_frames = traj.n_frames
    n_fft = scipy.fft.next_fast_len(2 * n_frames, real=True)
    sq_sum = np.zeros(n_frames)
    power = np.zeros(n_fft // 2 + 1)
    for x in _displacement_blocks(traj, idx, drift):
        sq_sum += np.einsum("tak,tak->t", x, x)
        spectrum = scipy.fft.rfft(x, n=n_fft, axis=0)
        power += np.einsum("fak,fak->f", spectrum.real, spectrum.real)
        power += np.einsum("fak,fak->f", spectrum.imag, spectrum.imag)
    autocorr = scipy.fft.irfft(power, n=n_fft)[:n_frames]
    head = np.cumsum(sq_sum)
    s1 = head[::-1] + (head[-1] - np.concatenate(([0.0], head[:-1])))
    msd = (s1 - 2 * autocorr) / ((n_frames - np.arange(n_frames)) * len(idx))
    # degrees of freedom taken by the drift removal, for atoms of equal mobility
    lost = 2 * weights[idx].sum() - len(idx) * np.dot(weights, weights)
    return MSD(symbol, len(idx), dt, np.maximum(msd, 0.0), max(len(idx) - lost, 1.0))


def fit_window(
    msd: MSD, fit_start_ps: float | None = None, fit_end_ps: float | None = None
) -> tuple[int, int]:
    """First and last lag (in frames) of the fit, by the rule in the module docstring."""
    last = len(msd.msd_A2) - 1
    if last < 8:
        raise InputError(f"{last + 1} frames are too few to fit a diffusivity (need at least 9)")
    to_lag = 1000.0 / msd.frame_interval_fs
    end = round(fit_end_ps * to_lag) if fit_end_ps is not None else int(FIT_END_FRACTION * last)
    if fit_start_ps is not None:
        start = round(fit_start_ps * to_lag)
    else:
        start = max(
            _diffusive_onset(msd, int(SLOPE_SEARCH_FRACTION * last)),
            int(np.ceil(FIT_START_MIN_FRACTION * last)),
        )
        start = min(start, end - 2)
    if not 1 <= start <= end - 2 or end > last:
        window = f"{start / to_lag:g}-{end / to_lag:g} ps"
        raise InputError(
            f"fit window {window} is not inside the {last / to_lag:g} ps run or too short"
        )
    return start, end


def fit_diffusivity(
    msd: MSD, start: int, end: int, k4_per_frame: float = 0.0, method: str = "ols"
) -> Diffusivity:
    """Fit ``MSD = 6 D t + c`` over lags ``start..end`` (frames); sigma from ``msd_covariance``."""
    dt = msd.frame_interval_fs
    lags = np.unique(
        np.linspace(start, end, min(MAX_FIT_POINTS, end - start + 1)).round().astype(int)
    )
    y = msd.msd_A2[lags]
    design = np.column_stack([lags * dt, np.ones(len(lags))])
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    # per-frame increment variance from the fitted slope, but at least half the level of the MSD
    # at the window end, so that a noisy or non-diffusive window never gets a vanishing error bar
    s2_floor = max(0.5 * y[-1] / (3 * lags[-1]), 1e-300)
    for _ in range(2 if method == "gls" else 1):  # GLS weights depend on D: iterate once
        s2 = max(beta[0] * dt / 3, s2_floor)
        cov = msd_covariance(lags, len(msd.msd_A2), msd.n_independent, s2, k4_per_frame)
        beta, beta_cov = (_gls if method == "gls" else _ols)(design, y, cov)
    slope_sigma = float(np.sqrt(beta_cov[0, 0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = float(np.log(y[-1] / y[0]) / np.log(lags[-1] / lags[0]))
    exponent_sigma = _log_slope_sigma(lags[[0, -1]], len(msd.msd_A2), msd.n_independent)[0]
    return Diffusivity(
        species=msd.species,
        n_atoms=msd.n_atoms,
        D_cm2_s=float(beta[0] / 6 * A2_PER_FS_TO_CM2_PER_S),
        D_sigma_cm2_s=slope_sigma / 6 * A2_PER_FS_TO_CM2_PER_S,
        fit_start_ps=start * dt / 1000,
        fit_end_ps=end * dt / 1000,
        msd_exponent=exponent,
        msd_exponent_sigma=float(exponent_sigma),
        msd_reached_A2=float(y[-1]),
        intercept_A2=float(beta[1]),
        method=method,
        msd=msd,
    )


def msd_covariance(
    lags: np.ndarray, n_frames: int, n_atoms: float, s2: float, k4: float = 0.0
) -> np.ndarray:
    """Covariance of the all-origins 3D MSD at ``lags`` (frames) for independent random walkers.

    Per Cartesian component the frame increments are i.i.d. with variance ``s2`` and fourth cumulant
    ``k4``. With ``ov`` the number of frame-to-frame steps two windows share,
    ``Cov(d_i^2, d_j^2) = 2 s2^2 ov^2 + k4 ov``; summing over all pairs of origins gives
    ``Cov(MSD_i, MSD_j) = 3 / (N A_i A_j) * (2 s2^2 P2 + k4 P1)`` (``A`` the number of origins),
    where ``P_p``, the sum over pairs of origins of ``ov^p``, has a closed form (``lo <= hi`` the
    two lags, ``c = T - lo - hi``)::

        P_p = sum_{v=1}^{lo} (c+v)_+ v^p + sum_{v=1}^{lo-1} (c+v)_+ v^p + (hi-lo)(T-hi) lo^p
    """
    lags = np.asarray(lags, dtype=float)
    lo = np.minimum.outer(lags, lags)
    hi = np.maximum.outer(lags, lags)
    c = n_frames - lo - hi
    v0 = np.maximum(1.0, 1.0 - c) - 1  # terms with v <= v0 have no pair of origins

    def ramp(p: int, top: np.ndarray) -> np.ndarray:  # sum_{v=v0+1}^{top} (c + v) v^p
        top = np.maximum(top, v0)
        return (
            c * (_power_sum(p, top) - _power_sum(p, v0))
            + _power_sum(p + 1, top)
            - _power_sum(p + 1, v0)
        )

    def pair_sum(p: int) -> np.ndarray:
        return ramp(p, lo) + ramp(p, lo - 1) + (hi - lo) * (n_frames - hi) * lo**p

    origins = n_frames - lags
    return 3 * (2 * s2**2 * pair_sum(2) + k4 * pair_sum(1)) / (n_atoms * np.outer(origins, origins))


def _power_sum(p: int, n: np.ndarray) -> np.ndarray:
    """``sum_{v=1}^{n} v^p`` for p = 1, 2, 3."""
    triangular = n * (n + 1) / 2
    return {1: triangular, 2: n * (n + 1) * (2 * n + 1) / 6, 3: triangular**2}[p]


def _ols(design: np.ndarray, y: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary least squares, with the coefficient covariance propagated from ``cov``."""
    projector = np.linalg.pinv(design)
    return projector @ y, projector @ cov @ projector.T


def _gls(design: np.ndarray, y: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised least squares: coefficients and their covariance."""
    scale = np.sqrt(np.diag(cov))
    corr = cov / np.outer(scale, scale)
    factor = scipy.linalg.cho_factor(corr + 1e-12 * np.eye(len(y)), lower=True)
    whitened_x = scipy.linalg.solve_triangular(factor[0], design / scale[:, None], lower=True)
    whitened_y = scipy.linalg.solve_triangular(factor[0], y / scale, lower=True)
    beta_cov = np.linalg.inv(whitened_x.T @ whitened_x)
    return beta_cov @ whitened_x.T @ whitened_y, beta_cov


def _diffusive_onset(msd: MSD, search_end: int) -> int:
    """First lag after which the local log-log slope stays within ``1 +- SLOPE_TOLERANCE``.

    Slopes are taken between lags a factor 2 apart; a slope counts as off when it misses the band by
    more than three standard errors (from the relative MSD covariance of a random walk), so that
    statistical noise at long lags does not move the window.
    """
    grid = np.unique(np.append(2 ** np.arange(int(np.log2(max(search_end, 2))) + 1), search_end))
    sigma = _log_slope_sigma(grid, len(msd.msd_A2), msd.n_independent)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.log(msd.msd_A2[grid[1:]] / msd.msd_A2[grid[:-1]]) / np.log(grid[1:] / grid[:-1])
    bad = np.flatnonzero(~(np.abs(slope - 1) <= SLOPE_TOLERANCE + 3 * sigma))
    return int(grid[0] if len(bad) == 0 else grid[bad[-1] + 1])


def _log_slope_sigma(lags: np.ndarray, n_frames: int, n_independent: float) -> np.ndarray:
    """Standard errors of the log-log MSD slopes between consecutive ``lags`` for a random walk.

    From the relative covariance of the MSD estimator (``msd_covariance`` over ``MSD = 3 s2 k``).
    """
    rel = msd_covariance(lags, n_frames, n_independent, 1.0) / (9 * np.outer(lags, lags))
    k = np.arange(len(lags) - 1)
    variance = rel[k, k] + rel[k + 1, k + 1] - 2 * rel[k, k + 1]
    return np.sqrt(np.maximum(variance, 0.0)) / np.log(lags[1:] / lags[:-1])


def _excess_fourth_cumulant(
    traj: Trajectory, idx: np.ndarray, drift: np.ndarray, lag: int
) -> float:
    """Per-frame fourth cumulant of one Cartesian increment, from displacements over ``lag`` frames.

    Cumulants of independent increments add up, so ``k4(lag) / lag`` estimates the per-frame value:
    zero for Gaussian motion, large for rare hops. The estimate is shrunk by ``K4_SHRINK`` standard
    errors of its Gaussian null (``sqrt(96 / n) m2^2`` for ``n`` independent displacements) and
    clipped at zero, so that noise does not distort the covariance of Gaussian motion.
    """
    m2 = m4 = 0.0
    count = 0
    for x in _displacement_blocks(traj, idx, drift):
        d = x[lag:] - x[:-lag]
        d *= d
        m2 += d.sum()
        m4 += np.vdot(d, d)
        count += d.size
    m2, m4 = m2 / count, m4 / count
    n_independent = 3 * len(idx) * (traj.n_frames - 1) / lag
    return max(m4 - 3 * m2**2 - K4_SHRINK * np.sqrt(96 / n_independent) * m2**2, 0.0) / lag


def _drift(traj: Trajectory, remove: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mass fractions and centre-of-mass displacement from frame 0 (zeros when not removed)."""
    from ase.data import atomic_masses

    if not remove:
        return np.zeros(traj.n_atoms), np.zeros((traj.n_frames, 3))
    weights = atomic_masses[traj.numbers] / atomic_masses[traj.numbers].sum()
    com = np.einsum("fak,a->fk", traj.positions, weights)
    return weights, com - com[0]


def _displacement_blocks(traj: Trajectory, idx: np.ndarray, drift: np.ndarray):
    """Yield drift-corrected displacements from frame 0, (n_frames, block, 3), atoms in blocks."""
    per_atom = max(traj.n_frames * 3 * 8 * 4, 1)  # the block copy plus its complex spectrum
    size = max(1, _BLOCK_BYTES // per_atom)
    for start in range(0, len(idx), size):
        block = traj.positions[:, idx[start : start + size], :]
        block -= block[0]
        block -= drift[:, None, :]
        yield block
