"""Molecular dynamics: the engine contract (:mod:`.engine`), and the ASE, batched and VASP engines."""
