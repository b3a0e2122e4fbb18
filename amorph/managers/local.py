"""Running flows on this machine, into the store, with every path resolved once.

jobflow runs each job inside its own folder; a path given relative to where the command started
would resolve again there. Everything here is made absolute before the first job runs.
"""

from __future__ import annotations

from pathlib import Path

from jobflow import Flow, JobStore, run_locally
from pymatgen.core import Composition

from amorph.flows.melt_quench import MeltQuenchMaker


def check_engine(maker: MeltQuenchMaker, compositions: list[Composition]) -> None:
    """Load the maker's engine and check it models every element, before anything is written."""
    engine = maker.engine.load()
    for composition in compositions:
        engine.check_elements([el.symbol for el in composition.elements])


def run_flow(flow: Flow, store: JobStore, outputs: str | Path, log: bool = False) -> None:
    """Run ``flow`` here; the first failing job stops it with its error.

    Parameters
    ----------
    flow, store
        What to run, and the store its documents go to.
    outputs
        Folder under which the job folders go (``<outputs>/jobs``).
    log
        Whether jobflow logs each job.
    """
    root = Path(outputs).resolve() / "jobs"
    root.mkdir(parents=True, exist_ok=True)
    run_locally(
        flow, store=store, root_dir=root, create_folders=True, log=log, raise_immediately=True
    )
