"""Model: how often a preset's check runs end unconverged when pressures are only noisy.

A Monte Carlo of the check-run stage with amorph's own decision rule
(:meth:`CheckRunMaker.decide`), rescale (:func:`amorph.volume.eos.rescaled_volume`) and modulus
choice (:func:`amorph.flows.volume._modulus`), on a stationary liquid whose true pressure is
P(V) = -B ln(V/V*) (no MD). What it draws:

- the first check volume's true pressure, normal with ``--start-sd`` (the EOS fit's error);
- the fit's modulus, B times a log-normal factor of width ``--modulus-sd``;
- each run's mean pressure, normal around the truth: standard error σ for a run's equilibrated
  half (a first run at a volume), σ/√2 for an extension (a whole run, pooled);
- the reported standard error, σ scaled by a χ² draw with the block average's degrees of
  freedom (5 blocks per half-run, 5–50 blocks).

It prints, per σ and ``max_attempts``, the fraction of stages that end unconverged and the mean
number of check runs, and the chance that 30 stages all converge. Drifting pressures (a melt
still reacting, a glass relaxing) are outside the model.

    python scripts/model_check_runs.py                  # the demo preset's rule and tolerance
    python scripts/model_check_runs.py --preset paper --sigmas 0.05 0.1 0.2
"""

from __future__ import annotations

import argparse
import dataclasses
from types import SimpleNamespace

import numpy as np

from amorph.analysis.timeseries import MAX_BLOCKS, MIN_BLOCKS, SampleMean
from amorph.flows.presets import PRESETS
from amorph.flows.volume import CheckRunMaker, _modulus
from amorph.volume.eos import rescaled_volume


def stage(rng, check: CheckRunMaker, sigma: float, start_sd: float, modulus_sd: float, bulk=30.0):
    """One modelled check-run stage; (converged, runs)."""
    volume = np.exp(rng.normal(0, start_sd) / bulk)  # zero pressure at V* = 1
    fitted = bulk * np.exp(rng.normal(0, modulus_sd))
    fit = SimpleNamespace(bulk_modulus=lambda _volume: fitted)
    history, total, halves = [], 0.0, 0.0  # pooled at the current volume, in half-run units
    for attempt in range(1, check.max_attempts + 1):
        weight = 1.0 if halves == 0 else 2.0
        total += weight * rng.normal(-bulk * np.log(volume), sigma / np.sqrt(weight))
        halves += weight
        dof = int(np.clip(MIN_BLOCKS * halves, MIN_BLOCKS, MAX_BLOCKS)) - 1
        sem = sigma / np.sqrt(halves) * np.sqrt(rng.chisquare(dof) / dof)
        pressure = SampleMean(total / halves, sem, dof)
        stats = SimpleNamespace(
            pressure=pressure, energy_drift_eV_per_atom=0.0, energy_drift_sem_eV_per_atom=0.0
        )
        decision = check.decide(stats, runs=1 + int(halves - 1) // 2)
        if decision == "converged":
            return True, attempt
        history.append(SimpleNamespace(volume_A3=volume, pressure_GPa=pressure.mean))
        if decision == "rescale":
            result = SimpleNamespace(history=history, volume_A3=volume)
            volume = rescaled_volume(volume, pressure.mean, _modulus(result, fit))
            total, halves = 0.0, 0.0
    return False, check.max_attempts


def unconverged(check, sigma, stages, rng, start_sd=0.8, modulus_sd=0.3) -> tuple[float, float]:
    """The fraction of ``stages`` modelled stages that end unconverged, and their mean runs."""
    results = [stage(rng, check, sigma, start_sd, modulus_sd) for _ in range(stages)]
    return 1 - np.mean([ok for ok, _ in results]), np.mean([runs for _, runs in results])


def main() -> None:
    """Print the unconverged fraction and mean runs for every σ and ``max_attempts``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[0.4, 0.6, 0.8, 1.0, 1.2])
    parser.add_argument("--attempts", nargs="+", type=int, default=[3, 4, 5, 6, 7])
    parser.add_argument("--start-sd", type=float, default=0.8, help="GPa")
    parser.add_argument("--modulus-sd", type=float, default=0.3)
    parser.add_argument("--stages", type=int, default=5000)
    args = parser.parse_args()
    preset = PRESETS[args.preset]().stage.check
    print(
        f"{args.preset}: tolerance {preset.pressure_tolerance_GPa} GPa, confidence "
        f"{preset.confidence}, max_attempts {preset.max_attempts}; start error "
        f"{args.start_sd} GPa, modulus error ×e^±{args.modulus_sd}, {args.stages} stages per row"
    )
    print(f"{'σ (GPa)':>8} {'attempts':>8} {'unconverged':>11} {'runs':>5} {'30 of 30':>8}")
    rng = np.random.default_rng(0)
    for sigma in args.sigmas:
        for attempts in args.attempts:
            check = dataclasses.replace(preset, max_attempts=attempts)
            failed, runs = unconverged(
                check, sigma, args.stages, rng, args.start_sd, args.modulus_sd
            )
            print(
                f"{sigma:>8.2f} {attempts:>8d} {failed:>11.4f} {runs:>5.2f} "
                f"{(1 - failed) ** 30:>8.2f}"
            )


if __name__ == "__main__":
    main()
