"""amorph: amorphous structures and their ionic diffusivities from melt-quench molecular dynamics."""

__version__ = "0.1.0"
