"""The run life shared by the engines (``amorph.md.lifecycle``): seeded start velocities,
checkpoints that any integrating engine resumes, and one blow-up report (on cheap LJ argon)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from lj_calculators import KilledAfter, TorchArgon, TorchArgonKilledAfter, argon
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.errors import MDInstabilityError
from amorph.md.ase import ASEEngine
from amorph.md.batched import BatchedEngine
from amorph.md.engine import MDSettings, MDState, MDTask
from amorph.md.lifecycle import masses_of, maxwell_boltzmann_momenta
from amorph.trajectory import Trajectory


def task(path, thermostat="nose-hoover", steps=100, chunk=40, structure=None):
    settings = MDSettings(time_step_fs=5.0, thermostat=thermostat, thermostat_time_fs=200.0)
    structure = structure or AseAtomsAdaptor.get_structure(
        bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2)
    )
    return MDTask(MDState(structure), 120.0, steps, settings, path, seed=3, chunk_steps=chunk)


@pytest.mark.parametrize("numbers", [[18] * 32, [3] * 24 + [8] * 12 + [15] * 4])
def test_seeded_start_velocities_are_those_ase_draws_with_zero_total_momentum(numbers):
    atoms = Atoms(numbers=numbers, positions=np.zeros((len(numbers), 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(atoms, temperature_K=1500.0, rng=np.random.default_rng(7))
    Stationary(atoms)
    momenta = maxwell_boltzmann_momenta(
        masses_of(np.array(numbers)), 1500.0, np.random.default_rng(7)
    )
    assert np.array_equal(momenta, atoms.get_momenta())
    assert np.abs(momenta.sum(0)).max() < 1e-12 * np.abs(momenta).max()


@pytest.mark.parametrize("thermostat", ["nose-hoover", "langevin"])
@pytest.mark.parametrize("killed", ["batched", "ase"])
def test_a_checkpoint_of_one_engine_is_resumed_by_the_other(tmp_path, thermostat, killed):
    """Killed in the second chunk, the run goes on in the other engine from the first checkpoint
    (positions, momenta, thermostat state) and ends where an uninterrupted run ends."""
    reference = ASEEngine(argon(), "lj").run_one(task(tmp_path / "ref", thermostat))
    dying = {
        "batched": BatchedEngine(TorchArgonKilledAfter(50), "lj"),
        "ase": ASEEngine(KilledAfter(50), "lj"),
    }[killed]
    survivor = {"batched": ASEEngine(argon(), "lj"), "ase": BatchedEngine(TorchArgon(), "lj")}
    with pytest.raises(KeyboardInterrupt):
        dying.run_one(task(tmp_path / "run", thermostat))
    assert (tmp_path / "run" / "md.checkpoint.npz").exists()
    resumed = survivor[killed].run_one(task(tmp_path / "run", thermostat))
    assert resumed.n_force_calls == 61  # the last 60 steps and the forces at the checkpoint
    a, b = Trajectory.load(reference.trajectory_path), Trajectory.load(resumed.trajectory_path)
    assert np.array_equal(a.time_fs, b.time_fs)
    assert np.abs(a.positions - b.positions).max() < 1e-9
    if thermostat == "langevin":  # the noise went on from the checkpointed generator
        assert a.metadata["final_state"]["thermostat"] == b.metadata["final_state"]["thermostat"]


def test_a_blow_up_is_reported_alike_by_both_engines(tmp_path):
    structure = AseAtomsAdaptor.get_structure(bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2))
    structure.translate_sites(
        [1], structure[0].coords - structure[1].coords + 0.9, frac_coords=False
    )
    messages = []
    for engine in (ASEEngine(argon(), "lj"), BatchedEngine(TorchArgon(), "lj")):
        with pytest.raises(MDInstabilityError) as error:
            engine.run_one(task(tmp_path, steps=50, chunk=None, structure=structure))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("MD at 120 K became unstable at step 1: temperature ")
    assert messages[0].endswith(f"eV (md in {tmp_path})")


@pytest.mark.parametrize(
    ("damaged", "damage"),
    [
        ("md.checkpoint.npz", "random"),
        ("md.checkpoint.npz", "truncated"),
        ("md.chunk0000.npz", "random"),
        ("md.chunk0000.npz", "truncated"),
    ],
)
def test_a_damaged_checkpoint_or_chunk_is_set_aside_and_the_run_recomputed(
    tmp_path, caplog, damaged, damage
):
    """Found before any step: the file goes to ``*.corrupt`` and the run starts again, ending
    where an uninterrupted run ends."""
    reference = ASEEngine(argon(), "lj").run_one(task(tmp_path / "ref"))
    with pytest.raises(KeyboardInterrupt):
        ASEEngine(KilledAfter(50), "lj").run_one(task(tmp_path / "run"))
    path = tmp_path / "run" / damaged
    good = path.read_bytes()
    path.write_bytes(np.random.default_rng(0).bytes(500) if damage == "random" else good[:300])
    resumed = ASEEngine(argon(), "lj").run_one(task(tmp_path / "run"))
    assert resumed.n_force_calls == 101  # all 100 steps again, nothing of the damaged state kept
    assert (tmp_path / "run" / f"{damaged}.corrupt").exists() and not path.exists()
    assert f"{path} is damaged" in caplog.text and f"moved to {damaged}.corrupt" in caplog.text
    a, b = Trajectory.load(reference.trajectory_path), Trajectory.load(resumed.trajectory_path)
    assert np.abs(a.positions - b.positions).max() < 1e-9


def test_a_damaged_finished_run_is_set_aside_and_run_again(tmp_path):
    done = ASEEngine(argon(), "lj").run_one(task(tmp_path))
    Path(done.trajectory_path).write_bytes(b"PK\x03\x04 not a zip")
    again = ASEEngine(argon(), "lj").run_one(task(tmp_path))
    assert again.n_force_calls == 101 and (tmp_path / "md.npz.corrupt").exists()
    assert Trajectory.load(again.trajectory_path).metadata["complete"]


@pytest.mark.parametrize("engine", ["ase", "batched"])
def test_what_a_killed_run_was_writing_is_removed_by_the_next_run(tmp_path, engine):
    """A run killed inside an atomic write leaves a hidden temporary file; the next run of the
    same task removes it, and nothing else of the folder."""
    stale = [tmp_path / ".md.chunk0001.npz.k3x9.tmp", tmp_path / ".md.checkpoint.npz.a1b2.tmp"]
    other = tmp_path / ".eos00.npz.zz.tmp"  # another run's: not this task's to remove
    for path in [*stale, other]:
        path.write_bytes(b"half a file")
    live = {"ase": ASEEngine(argon(), "lj"), "batched": BatchedEngine(TorchArgon(), "lj")}[engine]
    live.run_one(task(tmp_path, steps=20, chunk=10))
    assert not any(path.exists() for path in stale) and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".npz") == ["md.npz"]


def _killed_while_joining(cls, parts):
    raise KeyboardInterrupt


@pytest.mark.parametrize("engine", ["ase", "batched"])
def test_a_run_killed_while_joining_its_chunks_is_joined_by_the_next(tmp_path, monkeypatch, engine):
    """Killed after its last checkpoint but before its final trajectory, the run is finished from
    its chunks by the next run of the task, no step taken again."""
    reference = ASEEngine(argon(), "lj").run_one(task(tmp_path / "ref"))
    with monkeypatch.context() as patch:
        patch.setattr(Trajectory, "concatenate", classmethod(_killed_while_joining))
        with pytest.raises(KeyboardInterrupt):
            ASEEngine(argon(), "lj").run_one(task(tmp_path / "run"))
    assert not (tmp_path / "run" / "md.npz").exists()
    live = {"ase": ASEEngine(argon(), "lj"), "batched": BatchedEngine(TorchArgon(), "lj")}[engine]
    resumed = live.run_one(task(tmp_path / "run"))
    assert resumed.n_force_calls == 0
    a, b = Trajectory.load(reference.trajectory_path), Trajectory.load(resumed.trajectory_path)
    assert np.abs(a.positions - b.positions).max() < 1e-9 and b.metadata["complete"]
    left = sorted(p.name for p in (tmp_path / "run").iterdir() if p.suffix == ".npz")
    assert left == ["md.npz"]  # the chunks and the checkpoint removed
