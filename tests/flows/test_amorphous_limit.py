"""The amorphous-limit flow: snapshot sampling, offline elemental references, formation energies,
with an ML-style engine (Lennard-Jones argon through ASE) and with VASP (the fake VASP of
``fake_vasp.py``)."""

import json

import numpy as np
import pytest
from builders import antifluorite, run_jobs
from fake_vasp import COMMAND, FAST_CUSTODIAN, write_potcar_library
from pymatgen.core import SETTINGS, Composition, Lattice, Structure
from pymatgen.io.vasp import Incar

from amorph.cli import main
from amorph.errors import InputError
from amorph.flows.amorphous_limit import (
    AmorphousLimitMaker,
    formation_energy_per_atom,
    reference_structure,
    sample_snapshots,
)
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.results.store import embedded_store
from amorph.trajectory import Trajectory

LJ_ARGON = EngineSpec.parse("lj_calculators:argon")


def run_flow(flow, tmp_path):
    store = embedded_store(tmp_path / "store")
    run_jobs(flow, store, tmp_path / "jobs")
    return flow.output.resolve(store)


def test_snapshots_are_taken_every_interval_back_from_the_last_frame():
    n = 10001  # 20 ps of 2 fs steps, as in the paper's production run
    trajectory = Trajectory(
        numbers=[3], positions=np.zeros((n, 1, 3)), cells=np.eye(3) * 5, time_fs=2.0 * np.arange(n)
    )
    indices = sample_snapshots(trajectory, count=10, interval_ps=2.0)
    assert trajectory.time_fs[indices].tolist() == [2000.0 * k for k in range(1, 11)]
    assert len(sample_snapshots(trajectory, count=10, interval_ps=5.0)) == 5  # only 5 fit in 20 ps


def test_offline_elemental_references():
    oxygen = reference_structure("O")
    assert not oxygen.relax_cell and oxygen.description == "O2 molecule in a 10 Å box"
    assert oxygen.structure.get_distance(0, 1) == pytest.approx(1.21)
    sulfur = reference_structure("S").structure
    assert len(sulfur) == 8 and np.sort(sulfur.distance_matrix[0])[1:3] == pytest.approx(
        [2.05, 2.05]
    )
    lithium = reference_structure("Li")
    assert lithium.relax_cell and lithium.description == "bcc Li (ASE reference state)"
    phosphorus = reference_structure("P").structure
    assert len(phosphorus) == 8 and np.sort(phosphorus.distance_matrix[0])[1] == pytest.approx(
        2.22, abs=0.01
    )
    with pytest.raises(InputError, match="no offline reference structure for B: give one in"):
        reference_structure("B")


def test_elements_without_a_reference_stop_the_flow_before_it_runs():
    boron = Structure(Lattice.cubic(5.0), ["B"], [[0, 0, 0]])
    with pytest.raises(InputError, match="no offline reference structure for B"):
        AmorphousLimitMaker().validate(["B"])
    AmorphousLimitMaker(references={"B": boron}).validate(["B"])


def test_formation_energy_weights_the_elements_by_atom_fraction():
    energy = formation_energy_per_atom(Composition("Li2O"), -3.0, {"Li": -1.0, "O": -4.0})
    assert energy == pytest.approx(-3.0 - (2 / 3 * -1.0 + 1 / 3 * -4.0))


def liquid_argon_run(work_dir, steps=300):
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    liquid = AseAtomsAdaptor.get_structure(bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2))
    task = MDTask(MDState(liquid), 120.0, steps, MDSettings(time_step_fs=5.0), work_dir, seed=1)
    return LJ_ARGON.load().run_one(task)


def test_amorphous_argon_lies_above_the_fcc_crystal(tmp_path):
    engine = LJ_ARGON.load()
    production = liquid_argon_run(tmp_path / "md")
    result = run_flow(
        AmorphousLimitMaker(engine=LJ_ARGON, snapshots=3, interval_ps=0.5, max_steps=500).make(
            production
        ),
        tmp_path,
    )
    assert [s.time_ps for s in result.snapshots] == pytest.approx([0.5, 1.0, 1.5])
    (argon,) = result.references
    assert argon.description == "fcc Ar (ASE reference state)" and argon.relax_converged
    trajectory = Trajectory.load(production.trajectory_path)
    for snapshot in result.snapshots:
        assert snapshot.relax_converged
        assert (
            0 < snapshot.formation_energy_eV_per_atom < 0.02
        )  # a glass, a little above the crystal
        assert snapshot.formation_energy_eV_per_atom == pytest.approx(
            snapshot.energy_eV_per_atom - argon.energy_eV_per_atom
        )
        frame = int(np.argmin(np.abs(trajectory.time_fs - 1000 * snapshot.time_ps)))
        assert (
            snapshot.energy_eV_per_atom < engine.static(trajectory.structure(frame), tmp_path) / 32
        )
    assert result.amorphous_limit_eV_per_atom == min(
        s.formation_energy_eV_per_atom for s in result.snapshots
    )
    assert result.formula == "Ar" and result.engine == "ase lj_calculators:argon"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pymatgen does not know the fake POTCARs
def test_vasp_amorphous_limit_uses_mp_relax_and_static_sets(tmp_path, monkeypatch):
    monkeypatch.setitem(
        SETTINGS, "PMG_VASP_PSP_DIR", str(write_potcar_library(tmp_path / "psp", ["Li_sv", "O"]))
    )
    spec = EngineSpec("vasp", options={"command": COMMAND, "custodian_kwargs": FAST_CUSTODIAN})
    production = spec.load().run_one(
        MDTask(MDState(antifluorite(4.9)), 1000.0, 20, MDSettings(), tmp_path / "md", seed=1)
    )
    maker = AmorphousLimitMaker(engine=spec, snapshots=2, interval_ps=0.02, fmax=0.1, max_steps=8)
    result = run_flow(maker.make(production.trajectory_path), tmp_path)

    incars = {
        path.parent.parent.name + path.parent.name: Incar.from_file(path)
        for path in (tmp_path / "jobs").glob("*/*/INCAR")
    }
    relaxes = [incar for name, incar in incars.items() if name.endswith("relax")]
    statics = [incar for name, incar in incars.items() if name.endswith("static")]
    assert len(relaxes) == len(statics) == 4  # two snapshots, Li and O
    for incar in relaxes:
        assert (incar["IBRION"], incar["NSW"], incar["EDIFFG"], incar["LDAU"]) == (
            2,
            8,
            -0.1,
            False,
        )
    assert sorted(incar["ISIF"] for incar in relaxes) == [
        2,
        3,
        3,
        3,
    ]  # the O2 molecule keeps its box
    assert all(
        incar["NSW"] == 0 and incar["ISMEAR"] == -5 and not incar["LDAU"] for incar in statics
    )

    references = {r.element: r for r in result.references}
    assert references["O"].description == "O2 molecule in a 10 Å box"
    potentials = {element: r.energy_eV_per_atom for element, r in references.items()}
    for snapshot in result.snapshots:
        expected = snapshot.energy_eV_per_atom - (2 * potentials["Li"] + potentials["O"]) / 3
        assert snapshot.formation_energy_eV_per_atom == pytest.approx(expected)
        assert snapshot.structure.composition.reduced_formula == "Li2O"
    assert [s.time_ps for s in result.snapshots] == pytest.approx([0.018, 0.038])
    assert result.amorphous_limit_eV_per_atom == min(
        s.formation_energy_eV_per_atom for s in result.snapshots
    )


def test_limit_command(tmp_path, capsys):
    production = liquid_argon_run(tmp_path / "md", steps=100)
    argv = [
        "limit",
        production.trajectory_path,
        "--engine",
        "lj_calculators:argon",
        "--snapshots",
        "2",
        "--interval-ps",
        "0.2",
        "--outputs",
        str(tmp_path / "limit"),
        "--json",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["time_ps"] for s in summary["snapshots"]] == pytest.approx([0.3, 0.5])
    assert summary["amorphous_limit_eV_per_atom"] == min(
        s["formation_energy_eV_per_atom"] for s in summary["snapshots"]
    )
    assert main(["limit", str(tmp_path / "absent.npz"), "--engine", "lj_calculators:argon"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"amorph: error: {tmp_path / 'absent.npz'}: no such trajectory file"
    )
