"""Sub-commands of the ``amorph`` command line; each module has ``register(subparsers)``."""
