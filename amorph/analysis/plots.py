"""PNG plots of RDFs, MSDs (with the fit window) and Arrhenius fits.

Figures are built with the object-oriented matplotlib API and written with the Agg canvas, so no
display and no global pyplot state are involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from amorph.analysis.arrhenius import ArrheniusFit
from amorph.analysis.diffusion import A2_PER_FS_TO_CM2_PER_S, Diffusivity
from amorph.analysis.rdf import RDF


def _figure(width: float = 6.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_rdf(rdf: RDF, path: str | Path, title: str = "") -> Path:
    """Partial g(r) of every pair and the total g(r)."""
    fig, ax = _figure()
    for (a, b), g in rdf.partials.items():
        ax.plot(rdf.r, g, lw=1.2, label=f"{a}–{b}")
    if len(rdf.partials) > 1:
        ax.plot(rdf.r, rdf.total, "k", lw=1.5, label="total")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=title, xlim=(0, rdf.edges[-1]))
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_msd(results: Mapping[str, Diffusivity], path: str | Path, title: str = "") -> Path:
    """MSD per species on log–log axes, with the fitted line over the shaded fit window."""
    fig, ax = _figure()
    for symbol, d in results.items():
        lag_ps = d.msd.lag_fs[1:] / 1000
        (line,) = ax.loglog(
            lag_ps, d.msd.msd_A2[1:], lw=1.2, label=f"{symbol}: D = {d.D_cm2_s:.2e} cm²/s"
        )
        window = np.linspace(d.fit_start_ps, d.fit_end_ps, 50)
        model = 6 * d.D_cm2_s / A2_PER_FS_TO_CM2_PER_S * 1000 * window + d.intercept_A2
        ax.loglog(window, np.where(model > 0, model, np.nan), "--", color=line.get_color(), lw=1.0)
        ax.axvspan(d.fit_start_ps, d.fit_end_ps, color=line.get_color(), alpha=0.08)
    ax.set(xlabel="lag time (ps)", ylabel="MSD (Å²)", title=title)
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_arrhenius(
    fits: Mapping[str, ArrheniusFit], points: Mapping[str, tuple], path: str | Path
) -> Path:
    """log10 D against 1000/T with error bars, fitted lines extended to 300 K.

    ``points[species] = (temperatures_K, D_cm2_s, D_sigma_cm2_s)``.
    """
    fig, ax = _figure()
    for symbol, (T, D, s) in points.items():
        T, D, s = (np.asarray(v, dtype=float) for v in (T, D, s))
        bars = ax.errorbar(1000 / T, D, yerr=s, fmt="o", capsize=3, label=symbol)
        if symbol in fits:
            fit = fits[symbol]
            grid = np.linspace(1000 / T.max(), 1000 / 300, 100)
            ax.plot(
                grid,
                [fit.extrapolate(1000 / x)[0] for x in grid],
                color=bars[0].get_color(),
                label=f"{symbol}: Ea = {fit.Ea_eV:.3f} ± {fit.Ea_sigma_eV:.3f} eV",
            )
    ax.set_yscale("log")
    ax.set(xlabel="1000 / T (1/K)", ylabel="D (cm²/s)")
    ax.legend(frameon=False)
    return _save(fig, path)
