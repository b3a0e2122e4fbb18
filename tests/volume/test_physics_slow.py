"""Long physics checks (deselected by default; run with ``python -m pytest -m slow``)."""

import numpy as np
import pytest
from pymatgen.core import Composition

from amorph.flows.stage import scaled_state
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.structure.packing import random_packed_structure
from amorph.volume.eos import fit_pressure_eos, zero_pressure_volume


@pytest.mark.slow
def test_li2o_virial_pressure_crosses_zero_at_a_liquid_volume_at_3000K(tmp_path):
    """Li2O, 30 atoms, CHGNet, 3000 K, 600-step runs averaged over their second half: the virial
    pressure crosses zero at a liquid volume (the crystal has 8.2 Å³/atom), while the total pressure
    (with N k T / V) is still about zero at 16 Å³/atom. Issue 2 quoted a crossing near 13.8 Å³/atom
    on its own cell; on this cell CHGNet's ASE calculator gives 12.20 and the batched engine 12.35
    and 12.20 (seeds 1 and 2): the run-to-run scatter of 600-step runs."""
    engine = EngineSpec("chgnet").load()
    melt = random_packed_structure(Composition("Li2O"), 10, 12.0, seed=5)
    results = {}
    for volume_per_atom in (10.0, 12.0, 14.0, 16.0):
        state = scaled_state(MDState(melt), volume_per_atom * 30)
        task = MDTask(state, 3000.0, 600, MDSettings(), tmp_path / f"v{volume_per_atom:g}", seed=1)
        results[volume_per_atom] = engine.run_one(task).stats
    volumes = np.array(list(results)) * 30
    virial = np.array([s.virial_pressure_GPa for s in results.values()])
    v0 = zero_pressure_volume(volumes, virial, fit_pressure_eos(volumes, virial)) / 30
    assert 11.5 < v0 < 15.5
    loose = results[
        16.0
    ]  # with the kinetic term, zero pressure lies at 16 Å³/atom or beyond (within 3 SEM)
    assert loose.virial_pressure_GPa + loose.kinetic_pressure_GPa > -3 * loose.pressure_sem_GPa


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2])
def test_the_demo_converges_at_both_temperatures(tmp_path, seed):
    """``amorph run Li2O --preset demo``, as a user runs it: the composition whose demo ended
    unconverged at 5000 K before the check run became a statistical test (issue 16).
    ``scripts/bench_protocol.py`` covers five compositions and three seeds."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "amorph.cli", "run", "Li2O", "--preset", "demo"]
    command += ["--seed", str(seed), "--second-opinion", "none"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=1800)
    shown = subprocess.run(
        [sys.executable, "-m", "amorph.cli", "db", "show", "Li2O", "--json"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    stages = json.loads(shown.stdout)
    assert [s["temperature_K"] for s in stages] == [5000, 2000]
    assert all(s["converged"] for s in stages), [s["check"]["runs"] for s in stages]
