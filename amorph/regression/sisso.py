"""SISSO-style sparse symbolic regression (Ouyang et al., Phys. Rev. Mater. 2, 083802 (2018)).

1. Feature space. Rung 0 holds the primary features (for ``amorph train``: the table's features and
   ``1/kT`` in eV⁻¹). Rung 1 adds every unary operator (exp, log, sqrt, ^-1, ^2, ^3) of a primary
   and every binary operator (+, -, *, /) of two primaries. Rung 2 applies the operators once more,
   to the ``RUNG2_BASE`` rung-0/1 features most correlated with the target (a bound on the work;
   full SISSO composes everything). Features that are not finite on every training row, are
   constant, or are an affine copy of a simpler feature (e.g. b-a of a-b) are dropped.
2. Search. For n = 1, 2, ...: sure-independence screening (SIS) adds the ``sis_size`` features most
   correlated with the residual of the best (n-1)-term model to the screened set S; then the best
   n-term least-squares model is sought over all n-subsets of S (ℓ0) when there are at most
   ``max_combinations`` of them, else over the ``beam`` best (n-1)-term models each extended by one
   member of S.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from amorph.errors import InputError

RUNG2_BASE = 40
MAX_ABS_VALUE = 1e12
"""Larger values (e.g. exp of a large feature) are treated as numerically unusable."""


def _reciprocal(x: np.ndarray) -> np.ndarray:
    return 1.0 / x


UNARY: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "exp": ("exp({})", np.exp),
    "log": ("log({})", np.log),
    "sqrt": ("sqrt({})", np.sqrt),
    "inv": ("{}^-1", _reciprocal),
    "sq": ("{}^2", np.square),
    "cube": ("{}^3", lambda x: x**3),
}
BINARY: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray], bool]] = {
    "add": ("{}+{}", np.add, True),  # (template, function, symmetric)
    "sub": ("{}-{}", np.subtract, True),  # a-b and b-a are the same feature up to sign
    "mul": ("{}*{}", np.multiply, True),
    "div": ("{}/{}", np.divide, False),
}


def _is_atomic(name: str) -> bool:
    """True when ``name`` has no operator outside parentheses (so it needs none around it)."""
    depth = 0
    for char in name:
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and char in "+-*/^ ":
            return False
    return True


def _wrap(name: str) -> str:
    return name if _is_atomic(name) else f"({name})"


@dataclass(frozen=True)
class Descriptor:
    """A feature expression: a primary feature (``op`` empty) or an operator applied to others."""

    name: str
    op: str = ""
    args: tuple[Descriptor, ...] = ()

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Values of the expression from the primary feature ``columns``."""
        if not self.op:
            return np.asarray(columns[self.name], dtype=float)
        values = [arg.evaluate(columns) for arg in self.args]
        with np.errstate(all="ignore"):
            return UNARY[self.op][1](*values) if self.op in UNARY else BINARY[self.op][1](*values)

    @property
    def primaries(self) -> tuple[str, ...]:
        """The primary features the expression reads, each once, in order of appearance."""
        if not self.op:
            return (self.name,)
        return tuple(dict.fromkeys(name for arg in self.args for name in arg.primaries))


def _unary(op: str, arg: Descriptor) -> Descriptor:
    template = UNARY[op][0]
    inner = arg.name if template.startswith(op) else _wrap(arg.name)
    return Descriptor(template.format(inner), op, (arg,))


def _binary(op: str, left: Descriptor, right: Descriptor) -> Descriptor:
    return Descriptor(BINARY[op][0].format(_wrap(left.name), _wrap(right.name)), op, (left, right))


class _Space:
    """The growing feature space: unique descriptors and their values on the training rows."""

    def __init__(self, n_rows: int):
        self.descriptors: list[Descriptor] = []
        self.values: list[np.ndarray] = []
        self._seen: set[bytes] = set()
        self._n_rows = n_rows

    def add(self, descriptor: Descriptor, values: np.ndarray) -> None:
        if values.shape != (self._n_rows,) or not np.isfinite(values).all():
            return
        if np.abs(values).max() > MAX_ABS_VALUE:
            return
        spread = values.std()
        if spread <= 1e-10 * (1.0 + np.abs(values).mean()):
            return
        z = (values - values.mean()) / spread
        z *= np.sign(z[np.flatnonzero(np.abs(z) > 1e-6)[0]])  # a feature and its negative are one
        key = np.round(z, 8).tobytes()
        if key not in self._seen:
            self._seen.add(key)
            self.descriptors.append(descriptor)
            self.values.append(values)

    def extend(self, base: list[int]) -> None:
        """Add every operator applied to the base features (given by index) once."""
        pool = [(self.descriptors[i], self.values[i]) for i in base]
        with np.errstate(all="ignore"):
            for descriptor, values in pool:
                for op, (_, function) in UNARY.items():
                    self.add(_unary(op, descriptor), function(values))
            for (i, (left, lv)), (j, (right, rv)) in itertools.product(enumerate(pool), repeat=2):
                for op, (_, function, symmetric) in BINARY.items():
                    if i < j or (i > j and not symmetric):
                        self.add(_binary(op, left, right), function(lv, rv))

    def matrix(self) -> np.ndarray:
        return np.column_stack(self.values)


def build_feature_space(
    columns: Mapping[str, np.ndarray], target: np.ndarray, complexity: int = 1
) -> tuple[list[Descriptor], np.ndarray]:
    """Descriptors up to rung ``complexity`` (0, 1 or 2) and their values on the given rows."""
    if complexity not in (0, 1, 2):
        raise InputError(f"SISSO complexity must be 0, 1 or 2, got {complexity}")
    space = _Space(len(target))
    for name, values in columns.items():
        space.add(Descriptor(name), np.asarray(values, dtype=float))
    if not space.descriptors:
        raise InputError("SISSO has no usable feature: every column is constant or not finite")
    if complexity >= 1:
        space.extend(list(range(len(space.descriptors))))
    if complexity >= 2:
        base = np.argsort(
            -np.abs(_correlations(_standardise(space.matrix()), target - target.mean()))
        )
        space.extend(sorted(base[:RUNG2_BASE].tolist()))
    return space.descriptors, space.matrix()


def _standardise(matrix: np.ndarray) -> np.ndarray:
    return (matrix - matrix.mean(axis=0)) / matrix.std(axis=0)


def _correlations(standardised: np.ndarray, residual: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(residual)
    return (
        standardised.T @ residual / (norm * math.sqrt(len(residual)))
        if norm
        else np.zeros(standardised.shape[1])
    )


@dataclass
class SissoModel:
    """``target ≈ intercept + Σ coefficients[i] · descriptors[i]``, fitted by least squares."""

    descriptors: tuple[Descriptor, ...]
    coefficients: np.ndarray
    intercept: float
    rmse_train: float
    target_label: str = "ln D"

    @property
    def primaries(self) -> tuple[str, ...]:
        """The primary features the model reads, each once."""
        return tuple(dict.fromkeys(name for d in self.descriptors for name in d.primaries))

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The target predicted from ``columns``, the primary features by name."""
        values = np.column_stack([d.evaluate(columns) for d in self.descriptors])
        return self.intercept + values @ self.coefficients

    @property
    def equation(self) -> str:
        """E.g. ``ln D = -0.33*(1/kT) - 0.11*LNC + 0.11*LLB - 1.95*PF - 3.55``."""
        terms = [
            f"{c:.4g}*{_wrap(d.name)}"
            for c, d in zip(self.coefficients, self.descriptors, strict=True)
        ]
        return f"{self.target_label} = " + " + ".join([*terms, f"{self.intercept:.4g}"]).replace(
            "+ -", "- "
        )


def _subset_rss(gram: np.ndarray, cov: np.ndarray, total: float, combos: np.ndarray) -> np.ndarray:
    """Residual sums of squares of least-squares fits on each row of ``combos`` (standardised)."""
    n = combos.shape[1]
    sub_gram = gram[combos[:, :, None], combos[:, None, :]] + 1e-10 * gram[0, 0] * np.eye(n)
    sub_cov = cov[combos]
    coef = np.linalg.solve(sub_gram, sub_cov[..., None])[..., 0]
    return total - np.einsum("bi,bi->b", sub_cov, coef)


def _candidates(
    n_screened: int, n_terms: int, beam: np.ndarray, max_combinations: int
) -> Iterator[np.ndarray]:
    """Chunks of n-subsets of the screened set: all if few enough, else the beam extended."""
    chunk = 50_000
    if math.comb(n_screened, n_terms) <= max_combinations:
        combos = itertools.combinations(range(n_screened), n_terms)
        while block := list(itertools.islice(combos, chunk)):
            yield np.array(block, dtype=np.intp)
        return
    extended = {
        tuple(sorted((*row, j))) for row in beam.tolist() for j in range(n_screened) if j not in row
    }
    ordered = np.array(sorted(extended), dtype=np.intp)
    for start in range(0, len(ordered), chunk):
        yield ordered[start : start + chunk]


def _fit(matrix: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, float]:
    design = np.column_stack([matrix, np.ones(len(target))])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    rmse = float(np.sqrt(np.mean((design @ solution - target) ** 2)))
    return solution[:-1], float(solution[-1]), rmse


def fit_sisso(
    columns: Mapping[str, np.ndarray],
    target: np.ndarray,
    *,
    complexity: int = 1,
    max_terms: int = 6,
    sis_size: int = 50,
    max_combinations: int = 1_000_000,
    beam: int = 500,
    target_label: str = "ln D",
) -> list[SissoModel]:
    """The best 1-, 2-, ..., ``max_terms``-term linear models of ``target`` over the feature space
    of the primary ``columns`` up to rung ``complexity`` (see the module docstring)."""
    target = np.asarray(target, dtype=float)
    descriptors, matrix = build_feature_space(columns, target, complexity)
    n_rows, n_features = matrix.shape
    max_terms = min(max_terms, n_features, n_rows - 2)
    if max_terms < 1:
        raise InputError(
            f"SISSO needs more rows and features (got {n_rows} rows, {n_features} features)"
        )
    standardised = _standardise(matrix)
    centred = target - target.mean()
    total = float(centred @ centred)
    screened: list[int] = []
    best_subsets = np.zeros((1, 0), dtype=np.intp)
    residual = centred
    models = []
    for n_terms in range(1, max_terms + 1):
        score = np.abs(_correlations(standardised, residual))
        score[screened] = -1.0
        screened += [int(i) for i in np.argsort(-score)[:sis_size] if score[i] >= 0]
        columns = standardised[:, screened]
        gram, cov = columns.T @ columns, columns.T @ centred
        scored = []
        for combos in _candidates(len(screened), n_terms, best_subsets, max_combinations):
            rss = _subset_rss(gram, cov, total, combos)
            keep = np.argsort(rss)[:beam]
            scored.append((rss[keep], combos[keep]))
        rss = np.concatenate([s[0] for s in scored])
        combos = np.concatenate([s[1] for s in scored])
        order = np.argsort(rss, kind="stable")[:beam]
        best_subsets = combos[order]
        chosen = [screened[i] for i in best_subsets[0]]
        coefficients, intercept, rmse = _fit(matrix[:, chosen], target)
        models.append(
            SissoModel(
                tuple(descriptors[i] for i in chosen), coefficients, intercept, rmse, target_label
            )
        )
        residual = target - (matrix[:, chosen] @ coefficients + intercept)
    return models
