"""Molecular dynamics: the engine contract (:mod:`.engine`); the ASE, batched and VASP engines."""
