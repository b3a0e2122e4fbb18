"""The ASE MD engine: thermostats, statistics, checkpoint resume and blow-up detection (on cheap LJ
argon)."""

import numpy as np
import pytest
from ase.build import bulk
from ase.units import kB
from lj_calculators import KilledAfter, NaNAfter, argon
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.errors import EngineError, MDInstabilityError
from amorph.md.ase import ASEEngine
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.trajectory import Trajectory

GPA = 160.21766208  # eV/Å³ in GPa


def liquid_argon(a=5.6):
    return AseAtomsAdaptor.get_structure(bulk("Ar", "fcc", a=a, cubic=True).repeat(2))


def task(tmp_path, steps=400, temperature=120.0, chunk=None, thermostat="nose-hoover", **kwargs):
    settings = MDSettings(time_step_fs=5.0, thermostat=thermostat, thermostat_time_fs=200.0)
    return MDTask(
        MDState(liquid_argon(**kwargs)),
        temperature,
        steps,
        settings,
        tmp_path,
        seed=3,
        chunk_steps=chunk,
    )


@pytest.mark.parametrize("thermostat", ["nose-hoover", "langevin"])
def test_thermostat_holds_temperature(tmp_path, thermostat):
    result = ASEEngine(argon(), "lj").run_one(task(tmp_path, steps=1200, thermostat=thermostat))
    assert result.stats.temperature_K == pytest.approx(120.0, rel=0.1)
    assert result.n_force_calls == 1201  # one evaluation per step plus the starting forces


def test_statistics_follow_the_pressure_conventions(tmp_path):
    result = ASEEngine(argon(), "lj").run_one(task(tmp_path))
    traj = Trajectory.load(result.trajectory_path)
    s = result.stats
    assert s.pressure_convention == "virial" and s.pressure_GPa == s.virial_pressure_GPa
    # the kinetic term is the ideal-gas pressure N k_B T / V of the same frames
    half = traj.n_frames // 2
    ideal = len(traj.numbers) * kB * traj.temperatures[half:].mean() / traj.volumes[0] * GPA
    assert s.kinetic_pressure_GPa == pytest.approx(ideal, rel=1e-6)
    assert traj.n_frames == 400 and np.allclose(np.diff(traj.time_fs), 5.0)


def test_compressed_argon_has_higher_virial_pressure(tmp_path):
    engine = ASEEngine(argon(), "lj")
    dense = engine.run_one(task(tmp_path / "dense", steps=100, a=5.2)).stats.virial_pressure_GPa
    loose = engine.run_one(task(tmp_path / "loose", steps=100, a=6.0)).stats.virial_pressure_GPa
    assert dense > loose + 0.05


def test_killed_run_resumes_from_checkpoint_without_lost_or_repeated_frames(tmp_path):
    reference = ASEEngine(argon(), "lj").run_one(task(tmp_path / "ref", chunk=100))
    with pytest.raises(KeyboardInterrupt):  # killed during the third chunk
        ASEEngine(KilledAfter(250), "lj").run_one(task(tmp_path / "run", chunk=100))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "md.checkpoint.npz",
        "md.chunk0000.npz",
        "md.chunk0001.npz",
    ]
    resumed_engine = ASEEngine(argon(), "lj")
    resumed = resumed_engine.run_one(task(tmp_path / "run", chunk=100))
    assert resumed.n_force_calls < 250  # only the missing chunks were integrated
    a, b = Trajectory.load(reference.trajectory_path), Trajectory.load(resumed.trajectory_path)
    assert np.array_equal(a.time_fs, b.time_fs)
    assert np.allclose(a.positions, b.positions, atol=1e-8)  # thermostat state restored exactly
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["md.npz"]


def test_completed_run_is_not_repeated(tmp_path):
    engine = ASEEngine(argon(), "lj")
    first = engine.run_one(task(tmp_path, steps=50))
    again = engine.run_one(task(tmp_path, steps=50))
    assert again.trajectory_path == first.trajectory_path and again.n_force_calls == 0


def test_nan_energy_stops_the_run_with_the_reason(tmp_path):
    with pytest.raises(MDInstabilityError, match=r"unstable at step 11: .*energy nan"):
        ASEEngine(NaNAfter(11), "lj").run_one(task(tmp_path, steps=50))


def test_exploding_temperature_is_detected(tmp_path):
    structure = liquid_argon()
    structure.translate_sites(
        [1], structure[0].coords - structure[1].coords + 0.9, frac_coords=False
    )
    settings = MDSettings(time_step_fs=5.0, thermostat_time_fs=200.0)
    with pytest.raises(MDInstabilityError, match="temperature"):
        ASEEngine(argon(), "lj").run_one(MDTask(MDState(structure), 120.0, 50, settings, tmp_path))


def test_any_ase_calculator_plugs_in_by_import_path(tmp_path):
    engine = EngineSpec.parse("lj_calculators:argon").load()
    assert engine.run_one(task(tmp_path, steps=20)).stats.n_atoms == 32
    with pytest.raises(EngineError, match="cannot import calculator factory"):
        EngineSpec.parse("lj_calculators:nowhere").load()
