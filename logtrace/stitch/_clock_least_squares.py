"""Weighted least squares over the clock graph: offsets from pairs' midpoints.

Minimises ``sum w * (x[b] - x[a] - d)^2`` with one anchor per connected
group, optionally with terms that some links' midpoints carry (see
:mod:`._clock_asymmetry`). The normal equations are solved densely: a run
has tens of services, not thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["Link", "components", "least_squares", "least_squares_with_terms", "solve_symmetric"]

RIDGE = 1e-6
"""Relative ridge on the terms' diagonal."""

Link = tuple[str, str, float, float]
"""Two clocks, the midpoint of ``x[b] - x[a]`` and its weight."""


def components(order: list[str], pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each service's group representative (union-find)."""
    parent = {s: s for s in order}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in order}


def least_squares(order: list[str], links: list[Link], reference: str) -> dict[str, float]:
    """Minimise sum w * (x[b] - x[a] - d)^2 with one anchor per group."""
    return least_squares_with_terms(order, links, [], [], reference)[0]


def least_squares_with_terms(
    order: list[str],
    links: list[Link],
    signs: Sequence[Sequence[int]],
    kinds: Sequence[int],
    reference: str,
) -> tuple[dict[str, float], list[float], float]:
    """Offsets, terms and the weighted residual sum of squares for
    ``d = x[b] - x[a] + sum(signs[i][k] * term[k] for k in kinds)``.

    Terms not in ``kinds`` are zero. A term the graph cannot tell from the
    offsets (no loop shows it) comes out zero.
    """
    groups = components(order, [(a, b) for a, b, _, _ in links])
    anchors: dict[str, str] = {}
    for s in order:
        anchors.setdefault(groups[s], s)
    if reference in groups:
        anchors[groups[reference]] = reference
    fixed = set(anchors.values())
    free = [s for s in order if s not in fixed]
    index = {s: i for i, s in enumerate(free)}
    n = len(free)
    size = n + len(kinds)
    matrix = [[0.0] * size for _ in range(size)]
    rhs = [0.0] * size
    for i, (a, b, d, w) in enumerate(links):
        # Residual x[b] - x[a] + sum(sign * term) - d; anchors are fixed at zero.
        column = {}
        if (ia := index.get(a)) is not None:
            column[ia] = -1.0
        if (ib := index.get(b)) is not None:
            column[ib] = 1.0
        for j, k in enumerate(kinds):
            if signs[i][k]:
                column[n + j] = float(signs[i][k])
        for r, cr in column.items():
            rhs[r] += w * cr * d
            row = matrix[r]
            for c, cc in column.items():
                row[c] += w * cr * cc
    for j in range(n, size):
        # A hair of ridge: terms the loops show only in sum share it evenly
        # (the least-norm split) instead of running off together.
        matrix[j][j] *= 1.0 + RIDGE
    x = solve_symmetric(matrix, rhs)
    result = dict.fromkeys(order, 0.0)
    for s, i in index.items():
        result[s] = x[i]
    terms = [0.0] * (len(signs[0]) if signs else 0)
    for j, k in enumerate(kinds):
        terms[k] = x[n + j]
    rss = 0.0
    for i, (a, b, d, w) in enumerate(links):
        fit = result[b] - result[a] + sum(signs[i][k] * terms[k] for k in kinds)
        rss += w * (fit - d) ** 2
    return result, terms, rss


def solve_symmetric(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Solve a symmetric positive (semi)definite system; free directions -> 0."""
    n = len(rhs)
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(matrix[r][col]))
        if abs(matrix[pivot][col]) < 1e-300:
            continue
        if pivot != col:
            matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
            rhs[col], rhs[pivot] = rhs[pivot], rhs[col]
        row = matrix[col]
        inv = 1.0 / row[col]
        for r in range(col + 1, n):
            other = matrix[r]
            factor = other[col] * inv
            if factor:
                for c in range(col, n):
                    other[c] -= factor * row[c]
                rhs[r] -= factor * rhs[col]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        row = matrix[r]
        if abs(row[r]) < 1e-300:
            continue
        acc = rhs[r] - sum(row[c] * x[c] for c in range(r + 1, n))
        x[r] = acc / row[r]
    return x
