"""The batched engine's integrators and run bookkeeping, on Lennard-Jones argon written in torch.

The torch potential (``lj_calculators.TorchArgon``) is ASE's smoothly cut Lennard-Jones, so the
batched engine can be compared step for step with the ASE engine running ``ase.calculators.lj``.
"""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.units import kB
from lj_calculators import TorchArgon, TorchArgonKilledAfter, argon
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.errors import InputError, MDInstabilityError
from amorph.md.ase import ASEEngine
from amorph.md.batched import BatchedEngine
from amorph.md.engine import MDSettings, MDState, MDTask
from amorph.trajectory import Trajectory


class NaNForCell(TorchArgon):
    """Argon whose replica with the cubic cell of edge ``a`` gets a NaN energy from evaluation
    ``after`` on."""

    def __init__(self, a, after):
        super().__init__()
        self.volume, self.after = (2 * a) ** 3, after

    def energies(self, systems, *args):
        energies = super().energies(systems, *args)
        if self.calls > self.after:
            energies = torch.where(
                (systems.volumes - self.volume).abs() < 1e-6, torch.nan, energies
            )
        return energies


def task(
    path,
    temperature=120.0,
    seed=3,
    steps=100,
    a=5.6,
    thermostat="nose-hoover",
    chunk=None,
    damping=200.0,
    time_step=5.0,
    repeat=(2, 2, 2),
    interval=1,
):
    settings = MDSettings(
        time_step_fs=time_step,
        thermostat=thermostat,
        thermostat_time_fs=damping,
        sample_interval=interval,
    )
    structure = AseAtomsAdaptor.get_structure(bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat))
    return MDTask(
        MDState(structure), temperature, steps, settings, path, seed=seed, chunk_steps=chunk
    )


def mixed_tasks(root, thermostat="nose-hoover", **kwargs):
    """Three replicas with different temperatures, seeds, cells and numbers of atoms."""
    return [
        task(root / "a", 120.0, 3, a=5.6, thermostat=thermostat, **kwargs),
        task(root / "b", 200.0, 5, a=5.8, thermostat=thermostat, **kwargs),
        task(root / "c", 80.0, 7, a=5.5, thermostat=thermostat, repeat=(2, 2, 3), **kwargs),
    ]


def engine(potential, max_atoms=1000):
    return BatchedEngine(potential, "lj", max_atoms=max_atoms)


def load(result):
    return Trajectory.load(result.trajectory_path)


@pytest.mark.parametrize("thermostat", ["nose-hoover", "langevin"])
def test_batched_integrators_follow_the_ase_engine_step_for_step(tmp_path, thermostat):
    reference = ASEEngine(argon(), "lj").run_one(
        task(tmp_path / "ase", thermostat=thermostat, chunk=40)
    )
    batched = engine(TorchArgon()).run(
        [
            task(tmp_path / "batched", thermostat=thermostat, chunk=40),
            task(tmp_path / "other", 300.0, 9),
        ]
    )[0]
    a, b = load(reference), load(batched)
    assert np.array_equal(a.time_fs, b.time_fs)
    assert np.abs(a.positions - b.positions).max() < 1e-9
    assert np.allclose(a.energies, b.energies, rtol=0, atol=1e-10)
    assert np.allclose(a.virial_pressures, b.virial_pressures, rtol=0, atol=1e-9)
    assert np.allclose(a.temperatures, b.temperatures, rtol=1e-9)
    final_a, final_b = a.metadata["final_state"], b.metadata["final_state"]
    if thermostat == "langevin":  # the same random numbers were drawn, in the same order
        assert final_a["thermostat"] == final_b["thermostat"]
    else:
        assert np.allclose(
            final_a["thermostat"]["p_eta"], final_b["thermostat"]["p_eta"], rtol=1e-9
        )
    assert batched.n_force_calls == 101
    assert b.metadata["engine"] == "lj" and b.metadata["complete"]


@pytest.mark.parametrize("thermostat", ["nose-hoover", "langevin"])
def test_a_batched_run_equals_single_runs_with_the_same_seeds(tmp_path, thermostat):
    batched = engine(TorchArgon())
    together = batched.run(mixed_tasks(tmp_path / "together", thermostat, steps=40))
    # a budget of 80 atoms runs two replicas at a time, the next joining as soon as one finishes
    rolling = engine(TorchArgon(), max_atoms=80).run(
        [
            task(tmp_path / "d", 150.0, 11, steps=30),
            *mixed_tasks(tmp_path / "rolling", thermostat, steps=40),
        ]
    )
    alone = [batched.run([t])[0] for t in mixed_tasks(tmp_path / "alone", thermostat, steps=40)]
    for a, b, c in zip(together, rolling[1:], alone, strict=True):
        assert np.abs(load(a).positions - load(c).positions).max() < 1e-10
        assert np.abs(load(b).positions - load(c).positions).max() < 1e-10
        assert a.stats.temperature_K == pytest.approx(c.stats.temperature_K, rel=1e-10)


def test_killed_batch_resumes_every_replica_from_its_checkpoint(tmp_path):
    reference = engine(TorchArgon()).run(mixed_tasks(tmp_path / "ref", chunk=40))
    with pytest.raises(KeyboardInterrupt):  # killed during the third chunk
        engine(TorchArgonKilledAfter(90)).run(mixed_tasks(tmp_path / "run", chunk=40))
    assert sorted(p.name for p in (tmp_path / "run" / "b").iterdir()) == [
        "md.checkpoint.npz",
        "md.chunk0000.npz",
        "md.chunk0001.npz",
    ]
    potential = TorchArgon()
    resumed = engine(potential).run(mixed_tasks(tmp_path / "run", chunk=40))
    assert potential.calls == 21  # the last 20 steps and the forces at the checkpoint
    for a, b in zip(reference, resumed, strict=True):
        assert np.array_equal(load(a).time_fs, load(b).time_fs)
        assert np.abs(load(a).positions - load(b).positions).max() < 1e-10
    assert sorted(p.name for p in (tmp_path / "run" / "b").iterdir()) == ["md.npz"]
    again = engine(potential).run(mixed_tasks(tmp_path / "run", chunk=40))
    assert potential.calls == 21 and [r.n_force_calls for r in again] == [0, 0, 0]


def test_tasks_writing_the_same_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="distinct work_dir or label"):
        engine(TorchArgon()).run([task(tmp_path), task(tmp_path, 300.0)])


def test_an_unstable_replica_is_reported_and_the_others_complete(tmp_path):
    with pytest.raises(
        MDInstabilityError, match=r"200 K became unstable at step 11: .*energy nan.* \(md in .*b\)"
    ):
        engine(NaNForCell(a=5.8, after=11)).run(mixed_tasks(tmp_path))
    assert (tmp_path / "a" / "md.npz").exists() and (tmp_path / "c" / "md.npz").exists()
    assert not (tmp_path / "b" / "md.npz").exists()


def test_without_friction_the_langevin_integrator_conserves_energy(tmp_path):
    """Velocity Verlet (Langevin with zero friction): the total energy drifts by < 1e-4 eV/atom over
    2 ps."""
    (result,) = engine(TorchArgon()).run(
        [
            task(
                tmp_path,
                120.0,
                steps=1000,
                thermostat="langevin",
                damping=float("inf"),
                time_step=2.0,
            )
        ]
    )
    traj = load(result)
    total = (traj.energies + 1.5 * traj.n_atoms * kB * traj.temperatures) / traj.n_atoms
    drift = total[-100:].mean() - total[:100].mean()
    print(
        f"NVE drift of LJ argon, 2 fs, 2 ps: {drift:.2e} eV/atom, "
        f"fluctuation {total.std():.2e} eV/atom"
    )
    assert abs(drift) < 1e-4 and total.std() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("thermostat", ["nose-hoover", "langevin"])
def test_every_replica_of_a_mixed_batch_holds_its_temperature(tmp_path, thermostat):
    """108-atom argon at four temperatures in one batch, 50 ps each: the mean of the last 25 ps
    within 2%."""
    temperatures = [60.0, 90.0, 120.0, 150.0]
    tasks = [
        task(
            tmp_path / f"{t:.0f}",
            t,
            i,
            steps=10000,
            a=5.8,
            thermostat=thermostat,
            damping=100.0,
            repeat=(3, 3, 3),
            interval=10,
        )
        for i, t in enumerate(temperatures)
    ]
    results = engine(TorchArgon()).run(tasks)
    for target, result in zip(temperatures, results, strict=True):
        print(f"{thermostat} {target:.0f} K: mean {result.stats.temperature_K:.2f} K")
        assert result.stats.temperature_K == pytest.approx(target, rel=0.02)


def test_batched_engine_relaxes_and_evaluates_like_the_ase_engine():
    """Relaxations and static energies go through the batched potential as an ASE calculator."""
    atoms = bulk("Ar", "fcc", a=5.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=2)
    structure = AseAtomsAdaptor.get_structure(atoms)
    batched, reference = engine(TorchArgon()), ASEEngine(argon(), "lj")
    assert batched.static(structure) == pytest.approx(reference.static(structure), abs=1e-9)
    relaxed = batched.relax(structure, fmax=0.005, max_steps=500)
    expected = reference.relax(structure, fmax=0.005, max_steps=500)
    assert relaxed.converged and relaxed.energy_eV < batched.static(structure)
    assert relaxed.energy_eV == pytest.approx(expected.energy_eV, abs=1e-5)
    assert relaxed.structure.volume == pytest.approx(expected.structure.volume, rel=1e-4)
