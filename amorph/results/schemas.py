"""The documents amorph writes into the JobStore: the database schema.

A melt-quench flow leaves, per composition and temperature, one :class:`StageDoc` (written by the
stage's ``results`` job) and, per composition, one :class:`CompositionDoc` (written by its
``collect`` job) holding the Arrhenius fits and the uuids of its stage documents; a DFT audit adds
an :class:`AuditDoc` per stage, the audit/tune loop a :class:`TuningDoc` per composition. Every
number a user reads (``amorph db``, ``features``, ``compare``, ``publish``) comes from these
documents.

Units are in the field names (``_A3``, ``_GPa``, ``_cm2_s``, ``_fs``); arrays are lists of floats.
``schema_version`` is the major version of this schema: a reader refuses documents of another major
version rather than misreading them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, field_serializer
from pymatgen.core import Structure

SCHEMA_VERSION = "1.4"  # major.minor: a reader takes every minor version of its major


def _nan_for_none(value):
    return math.nan if value is None else value


# A float that may be NaN (a fit without that parameter, an error from too few points). JSON has
# no NaN: pydantic writes it as null, and so do workflow managers that stage outputs as JSON, so
# null reads back as NaN.
Number = Annotated[float, BeforeValidator(_nan_for_none)]


class EOSPointDoc(BaseModel):
    """One NVT run of the volume search: its volume and time-averaged pressure."""

    volume_A3: Number
    pressure_GPa: Number
    pressure_sem_GPa: Number
    temperature_K: Number
    energy_eV_per_atom: Number


class EOSFitDoc(BaseModel):
    """The P(V) fit: Birch–Murnaghan (``kind="birch-murnaghan"``) or a line where that fails."""

    kind: str
    v0_A3: Number
    b0_GPa: Number
    b0_prime: Number
    rms_residual_GPa: Number


class EOSDoc(BaseModel):
    """The volume search: sampled points, their fit, the zero-pressure volume chosen."""

    points: list[EOSPointDoc]
    fit: EOSFitDoc
    zero_pressure_volume_A3: Number
    extra_volumes: int = Field(description="volumes added beyond the initial factors")


class CheckRunDoc(BaseModel):
    """A check run: the statistics its decision used (pooled over the runs at its volume)."""

    volume_A3: Number
    pressure_GPa: Number
    pressure_sem_GPa: Number
    energy_drift_eV_per_atom: Number
    energy_drift_sem_eV_per_atom: Number | None = None
    decision: str | None = Field(
        None,
        description='"converged", "extend" (the next run continues at this volume), '
        '"rescale" (the next run is at another volume) or "stop" (out of attempts)',
    )


class CheckDoc(BaseModel):
    """The check runs, first to last; the last one's volume is the production volume."""

    converged: bool
    attempts: int
    runs: list[CheckRunDoc]


class DiffusivityDoc(BaseModel):
    """Tracer diffusivity of one species from the production run's MSD.

    ``diffusive`` is False when the MSD never became linear in time over the fit window (exponent
    far from 1) or stayed below a few Å²: then ``D_cm2_s`` is not a diffusivity. The conductivity is
    the Nernst–Einstein value for the species' ``charge``, present only when a charge is known.
    """

    species: str
    n_atoms: int
    D_cm2_s: Number
    D_sigma_cm2_s: Number
    fit_start_ps: Number
    fit_end_ps: Number
    msd_exponent: Number
    msd_exponent_sigma: float | None = None
    msd_reached_A2: float | None = None
    intercept_A2: Number = 0.0
    diffusive: bool | None = None
    non_diffusive_reason: str | None = None
    charge: float | None = None
    conductivity_mS_cm: float | None = None
    conductivity_sigma_mS_cm: float | None = None


class MSDCurve(BaseModel):
    """The all-origins MSD of one species at log-spaced lags (for plots)."""

    lag_fs: list[Number]
    msd_A2: list[Number]


class RDFDoc(BaseModel):
    """Frame-averaged partial g(r) of every species pair, with the counts behind them.

    ``pairs[i]`` is ``"A-B"``; ``g[i]`` and ``counts[i]`` (distances per bin, summed over frames,
    both orders) belong to it. ``shells`` lists first peak, first minimum and coordination numbers.
    """

    edges_A: list[Number]
    pairs: list[str]
    g: list[list[Number]]
    counts: list[list[Number]]
    total: list[Number]
    n_atoms: dict[str, int]
    n_frames: int
    shells: list[dict[str, float | str | None]] = Field(default_factory=list)

    @property
    def r_A(self) -> list[float]:
        """Bin centres in Å."""
        return [0.5 * (a + b) for a, b in zip(self.edges_A[:-1], self.edges_A[1:], strict=True)]

    def partial(self, a: str, b: str) -> list[float] | None:
        """g(r) of the pair in either order, or None."""
        for name in (f"{a}-{b}", f"{b}-{a}"):
            if name in self.pairs:
                return self.g[self.pairs.index(name)]
        return None


class TrajectoryRef(BaseModel):
    """Where the production trajectory is: a file, and/or the store's data store.

    ``job_uuid``/``index``: the production job whose output ``index`` holds the trajectory when it
    went to the data store (``in_data_store``); ``path`` is the file the engine wrote.
    """

    path: str | None = None
    job_uuid: str | None = None
    index: int = 0
    in_data_store: bool = False
    n_frames: int
    frame_interval_fs: Number


class BasisStressDoc(BaseModel):
    """A plane-wave DFT engine's basis-set (Pulay) stress, measured on one frame of the volume
    search: its virial pressure at the run's cutoff and at a converged one. The stage's pressures
    (EOS points, check runs, production) include ``correction_GPa`` = converged − run."""

    cutoff_eV: Number
    converged_cutoff_eV: Number
    pressure_GPa: Number
    converged_pressure_GPa: Number
    correction_GPa: Number


class SecondOpinionDoc(BaseModel):
    """A second potential's view of frames sampled from the production run, at the same volume.

    ``volume_shift`` is the implied relative change of the zero-pressure volume, ΔP / B0 with
    ΔP = second − first mean virial pressure and B0 from this stage's EOS fit;
    ``pressure_sem_GPa`` is the standard error of ΔP over the frames (paired).
    """

    engine: str
    engine_model: str | None = None
    n_frames: int
    pressure_GPa: Number
    pressure_sem_GPa: Number
    first_pressure_GPa: Number
    force_rms_difference_eV_A: Number
    force_rms_eV_A: Number
    volume_shift: Number


class StageDoc(BaseModel):
    """One composition at one temperature: volume search, check runs, production, analysis."""

    schema_version: str = SCHEMA_VERSION
    formula: str
    temperature_K: Number
    n_atoms: int
    volume_A3: Number
    volume_per_atom_A3: Number
    density_g_cm3: Number
    converged: bool
    mean_temperature_K: Number
    pressure_GPa: Number = Field(description="mean production pressure by pressure_convention")
    pressure_sem_GPa: Number
    virial_pressure_GPa: Number
    kinetic_pressure_GPa: Number
    energy_eV_per_atom: Number
    pressure_convention: str
    engine: str
    engine_model: str | None = None
    engine_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="what decides the engine's numbers: a DFT code's cutoff, k-points, datasets...",
    )
    time_step_fs: Number
    production_steps: int
    basis: BasisStressDoc | None = None
    eos: EOSDoc
    check: CheckDoc
    diffusivity: dict[str, DiffusivityDoc] = Field(default_factory=dict)
    msd: dict[str, MSDCurve] = Field(default_factory=dict)
    rdf: RDFDoc | None = None
    structure: Structure = Field(description="the last production frame")
    trajectory: TrajectoryRef
    second_opinion: SecondOpinionDoc | None = None
    surrogate_disagreement: bool | None = Field(
        default=None, description="the second opinion implies a volume shift beyond its tolerance"
    )

    @field_serializer("structure", when_used="json")
    def _structure_as_dict(self, structure: Structure) -> dict:
        return structure.as_dict()

    @property
    def production_ps(self) -> float:
        """Length of the production run (ps)."""
        return self.production_steps * self.time_step_fs / 1000


class AuditDoc(BaseModel):
    """A DFT audit of a stage: DFT single points on frames of its production run, beside the
    stage engine's own on the same frames.

    Differences are the stage engine's minus DFT's. ``volume_shift`` is the relative change of the
    zero-pressure volume that DFT's pressures imply, (P_DFT − P_engine) / B with B the stage's EOS
    modulus (negative: DFT's liquid is denser). ``disagreement`` flags a pressure difference that
    exceeds ``tolerance_GPa`` by more than its 95 % confidence interval (Student's t on the
    frames' paired differences).
    """

    schema_version: str = SCHEMA_VERSION
    formula: str
    temperature_K: Number
    stage_uuid: str = Field(description="the job that wrote the audited StageDoc")
    engine: str
    engine_model: str | None = None
    dft_engine: str
    dft_settings: dict[str, Any] = Field(default_factory=dict)
    n_atoms: int
    frame_indices: list[int]
    dft_pressures_GPa: list[Number]
    engine_pressures_GPa: list[Number]
    dft_energies_eV: list[Number]
    engine_energies_eV: list[Number]
    dft_forces_eV_A: list[list[list[float]]] = Field(
        default_factory=list, description="DFT forces of each frame (what `amorph tune` learns)"
    )
    dft_stresses_GPa: list[list[list[float]]] = Field(
        default_factory=list, description="DFT stress of each frame (3×3, ASE's sign)"
    )
    pressure_difference_GPa: Number
    pressure_difference_sem_GPa: Number
    force_rmse_eV_A: Number
    force_mae_eV_A: Number
    dft_force_rms_eV_A: Number
    energy_offset_eV_per_atom: Number = Field(description="mean energy difference per atom")
    energy_spread_eV_per_atom: Number = Field(
        description="standard deviation of the energy difference per atom (the offset removed)"
    )
    bulk_modulus_GPa: Number
    volume_shift: Number
    tolerance_GPa: Number
    disagreement: bool

    @property
    def dft_pressure_GPa(self) -> float:
        """Mean DFT pressure (GPa) over the audited frames."""
        return float(sum(self.dft_pressures_GPa) / len(self.dft_pressures_GPa))


class ArrheniusDoc(BaseModel):
    """``ln D = ln D0 − Ea / (kB T)`` for one species over the quench temperatures."""

    species: str
    Ea_eV: Number
    Ea_sigma_eV: Number
    D0_cm2_s: Number
    D0_sigma_cm2_s: Number
    D300K_cm2_s: Number = Field(description="extrapolated to 300 K")
    D300K_sigma_cm2_s: Number
    reduced_chi2: float | None = None
    temperatures_K: list[Number]
    non_diffusive_temperatures_K: list[Number] = Field(
        default_factory=list, description="temperatures left out: the MSD was not diffusive"
    )


class CompositionDoc(BaseModel):
    """One composition's melt-quench result: its stages (by job uuid) and the Arrhenius fits."""

    schema_version: str = SCHEMA_VERSION
    formula: str
    engine: str
    engine_model: str | None = None
    temperatures_K: list[Number] = Field(description="hottest (the melt) first")
    stage_uuids: list[str]
    arrhenius: dict[str, ArrheniusDoc] = Field(default_factory=dict)


class TuningRoundDoc(BaseModel):
    """One round of the audit/tune loop: the composition run with one model, and its audits."""

    round: int = Field(description="0: the stock model")
    engine_model: str | None = Field(description="the tuned model directory; None: stock")
    model_sha256: str | None = None
    composition_uuid: str = Field(description="the job that wrote the round's CompositionDoc")
    temperatures_K: list[Number]
    pressure_differences_GPa: list[Number] = Field(description="engine − DFT, per temperature")
    pressure_difference_sems_GPa: list[Number]
    disagreement: bool = Field(description="some stage's audit disagrees with DFT")


class TuningDoc(BaseModel):
    """The audit/tune loop of one composition (``--tune-with``): each round's model and audits,
    and why it stopped."""

    schema_version: str = SCHEMA_VERSION
    formula: str
    engine: str
    dft_engine: str
    rounds: list[TuningRoundDoc]
    frames: int = Field(description="DFT frames the last model was tuned on")
    stopped: str = Field(description='"agreement" or "round limit"')

    @property
    def temperatures_K(self) -> list[float]:
        """The temperatures of the last round."""
        return self.rounds[-1].temperatures_K
