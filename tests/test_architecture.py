"""The layout's one rule: packages import only packages below them in the data's journey (type-only
and function-level imports included), so that none of them imports another in a circle."""

import ast
from pathlib import Path

import amorph

ORDER = [
    # shared by everyone
    {"amorph", "constants", "errors", "files", "elements", "trajectory", "analysis"},
    {"structure"},  # composition → cell
    {"md"},  # the engine contract and the run lifecycle
    {"potentials"},  # ML potentials implement md's contract
    {"volume"},  # zero-pressure volume: EOS maths and the search's results
    {"results"},  # documents, store, reader, exports
    {"descriptors"},
    {"regression"},
    {"publish"},
    {"flows"},  # the Makers, which write results
    {"managers"},
    {"commands", "cli"},
]
LEVEL = {name: level for level, names in enumerate(ORDER) for name in names}


def imports(path: Path) -> set[str]:
    """The amorph packages (first name after ``amorph.``) that ``path`` imports, anywhere."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {
            n.split(".")[1] if "." in n else "amorph" for n in names if n.split(".")[0] == "amorph"
        }
    return found


def test_packages_import_only_those_below_them():
    root = Path(amorph.__file__).parent
    upward = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        package = (
            relative.parts[0].removesuffix(".py")
            if len(relative.parts) > 1 or relative.stem != "__init__"
            else "amorph"
        )
        assert package in LEVEL, f"{relative}: package {package} has no place in ORDER"
        upward.extend(
            f"{relative} imports amorph.{target}"
            for target in imports(path) - {package}
            if LEVEL[target] > LEVEL[package]
            or (LEVEL[target] == LEVEL[package] and LEVEL[package])
        )
    assert not upward, upward
