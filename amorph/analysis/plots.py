"""PNG plots of RDFs, MSDs (with the fit window), Arrhenius fits and comparisons with a reference.

Figures are built with the object-oriented matplotlib API and written with the Agg canvas, so no
display and no global pyplot state are involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from amorph.analysis.arrhenius import ArrheniusFit, ArrheniusPoints
from amorph.analysis.compare import Comparison
from amorph.analysis.diffusion import A2_PER_FS_TO_CM2_PER_S
from amorph.analysis.rdf import RDF


def canvas(width: float, height: float):
    """A matplotlib ``Figure`` of ``width`` × ``height`` inches on the Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure(width: float = 6.0, height: float = 4.5):
    """A figure with one set of axes: ``(fig, ax)``."""
    fig = canvas(width, height)
    return fig, fig.add_subplot()


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder created if needed); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_rdf(rdf: RDF, path: str | Path, title: str = "") -> Path:
    """Partial g(r) of every pair and the total g(r)."""
    fig, ax = figure()
    for (a, b), g in rdf.partials.items():
        ax.plot(rdf.r, g, lw=1.2, label=f"{a}–{b}")
    if len(rdf.partials) > 1:
        ax.plot(rdf.r, rdf.total, "k", lw=1.5, label="total")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=title, xlim=(0, rdf.edges[-1]))
    ax.legend(frameon=False)
    return save(fig, path)


class MSDFit(Protocol):
    """What :func:`plot_msd` reads of a fit: a
    :class:`~amorph.analysis.diffusion.Diffusivity` or its stored document."""

    @property
    def D_cm2_s(self) -> float:
        """Diffusivity in cm²/s."""

    @property
    def intercept_A2(self) -> float:
        """Intercept of the fitted line in Å²."""

    @property
    def fit_start_ps(self) -> float:
        """Start of the fit window in ps."""

    @property
    def fit_end_ps(self) -> float:
        """End of the fit window in ps."""


def plot_msd(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    fits: Mapping[str, MSDFit],
    path: str | Path,
    title: str = "",
) -> Path:
    """MSD per species on log–log axes, with the fitted line over the shaded fit window.

    ``curves[species] = (lag_fs, msd_A2)``; ``fits[species]`` has ``D_cm2_s``, ``intercept_A2``,
    ``fit_start_ps`` and ``fit_end_ps`` (:class:`MSDFit`: a
    :class:`~amorph.analysis.diffusion.Diffusivity` or its stored document).
    """
    fig, ax = figure()
    for symbol, (lag_fs, msd_A2) in curves.items():
        d = fits[symbol]
        lag_ps, msd_A2 = np.asarray(lag_fs) / 1000, np.asarray(msd_A2)
        positive = lag_ps > 0
        (line,) = ax.loglog(
            lag_ps[positive], msd_A2[positive], lw=1.2, label=f"{symbol}: D = {d.D_cm2_s:.2e} cm²/s"
        )
        window = np.linspace(d.fit_start_ps, d.fit_end_ps, 50)
        model = 6 * d.D_cm2_s / A2_PER_FS_TO_CM2_PER_S * 1000 * window + d.intercept_A2
        ax.loglog(window, np.where(model > 0, model, np.nan), "--", color=line.get_color(), lw=1.0)
        ax.axvspan(d.fit_start_ps, d.fit_end_ps, color=line.get_color(), alpha=0.08)
    ax.set(xlabel="lag time (ps)", ylabel="MSD (Å²)", title=title)
    ax.legend(frameon=False)
    return save(fig, path)


def plot_arrhenius(
    fits: Mapping[str, ArrheniusFit], points: Mapping[str, ArrheniusPoints], path: str | Path
) -> Path:
    """log10 D against 1000/T with error bars, fitted lines extended to 300 K.

    Non-diffusive points (left out of the fits) are drawn as open markers.
    """
    fig, ax = figure()
    for symbol, (T, D, s, diffusive) in points.items():
        T, D, s = (np.asarray(v, dtype=float) for v in (T, D, s))
        ok = np.asarray(diffusive, dtype=bool)
        bars = ax.errorbar(1000 / T[ok], D[ok], yerr=s[ok], fmt="o", capsize=3, label=symbol)
        color = bars[0].get_color()
        if not ok.all():
            ax.errorbar(
                1000 / T[~ok],
                D[~ok],
                yerr=s[~ok],
                fmt="o",
                mfc="none",
                color=color,
                capsize=3,
                label=f"{symbol}: not diffusive",
            )
        if symbol in fits:
            fit = fits[symbol]
            grid = np.linspace(1000 / max(fit.temperatures_K), 1000 / 300, 100)
            ax.plot(
                grid,
                [fit.extrapolate(1000 / x)[0] for x in grid],
                color=color,
                label=f"{symbol}: Ea = {fit.Ea_eV:.3f} ± {fit.Ea_sigma_eV:.3f} eV",
            )
    ax.set_yscale("log")
    ax.set(xlabel="1000 / T (1/K)", ylabel="D (cm²/s)")
    ax.legend(frameon=False)
    return save(fig, path)


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Ours vs reference: parity of volume per atom, density and D (log), and g(r) overlays.

    One RDF panel per pair and temperature with a reference RDF: ours (black) and every reference
    (dashed, with its R²). Open D markers are non-diffusive.
    """
    panels = [
        (t, pair)
        for t in comparison.temperatures
        for pair in dict.fromkeys(p for c in t.rdf for p in c.g)
    ]
    n_cols = 3
    n_rows = 1 + math.ceil(len(panels) / n_cols)
    fig = canvas(4.0 * n_cols, 3.4 * n_rows)
    grid = fig.add_gridspec(n_rows, n_cols)
    temps = comparison.temperatures
    for col, (name, ours, ref) in enumerate(
        [
            ("V/atom (Å³)", "volume_per_atom_A3", "reference_volume_per_atom_A3"),
            ("density (g/cm³)", "density_g_cm3", "reference_density_g_cm3"),
        ]
    ):
        pairs = [(t, getattr(t, ours), getattr(t, ref)) for t in temps]
        pairs = [(t, y, x) for t, y, x in pairs if x is not None and y is not None]
        ax = fig.add_subplot(grid[0, col])
        for t, y, x in pairs:
            ax.plot(x, y, "o", label=f"{t.temperature_K:g} K")
        _parity(ax, [x for _, _, x in pairs], [y for _, y, _ in pairs], name, log=False)
    ax = fig.add_subplot(grid[0, 2])
    rows = [(t, d) for t in temps for d in t.diffusivity if d.ratio is not None]
    for t, d in rows:
        ax.errorbar(
            d.reference_D_cm2_s,
            d.D_cm2_s,
            xerr=d.reference_D_sigma_cm2_s,
            yerr=d.D_sigma_cm2_s,
            fmt="o",
            mfc=None if d.diffusive is not False else "none",
            capsize=3,
            label=f"{d.species} {t.temperature_K:g} K"
            + (" (not diffusive)" if d.diffusive is False else ""),
        )
    _parity(ax, [d.reference_D_cm2_s for _, d in rows], [d.D_cm2_s for _, d in rows], "D (cm²/s)")
    for i, (t, pair) in enumerate(panels):
        ax = fig.add_subplot(grid[1 + i // n_cols, i % n_cols])
        found = [c for c in t.rdf if pair in c.g]
        ax.plot(found[0].r_A, found[0].g[pair], "k", lw=1.5, label="ours")
        for c in found:
            ax.plot(
                c.r_A, c.reference_g[pair], "--", lw=1.2, label=f"{c.label} R² {c.r2[pair]:.3f}"
            )
        ax.set(xlabel="r (Å)", ylabel="g(r)", title=f"{pair}, {t.temperature_K:g} K")
        ax.legend(frameon=False, fontsize="small")
    fig.suptitle(f"{comparison.formula}: ours vs reference")
    return save(fig, path)


def _parity(ax, x: list[float], y: list[float], quantity: str, log: bool = True) -> None:
    """Axis labels and the y = x line of a parity plot, or a note when there is nothing to show."""
    ax.set(xlabel=f"reference {quantity}", ylabel=f"ours {quantity}")
    values = [v for v in x + y if v is not None and (v > 0 or not log)]
    if not values:
        ax.text(0.5, 0.5, "no reference", ha="center", va="center", transform=ax.transAxes)
        return
    low, high = min(values), max(values)
    low, high = (low / 1.5, high * 1.5) if log else (low - 0.05 * high, high * 1.05)
    ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls=":")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.legend(frameon=False, fontsize="small")
