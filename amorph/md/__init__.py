"""Molecular dynamics: the engine contract (:mod:`.engine`), the run lifecycle every engine shares
(:mod:`.lifecycle`), and the ASE, batched, GPAW and VASP engines."""
