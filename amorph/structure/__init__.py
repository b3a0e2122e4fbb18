"""From a formula to a cell: composition parsing and validation, random packing with packmol."""
