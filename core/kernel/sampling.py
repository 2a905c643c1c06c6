"""Seeded, reproducible choices of rows: a rank per row id, and a stratified sample topped up to
exactly n rows."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def seeded_rank(seed: int, row_id: str, salt: str = "") -> str:
    """A row's place in a seeded order: the same for the same seed, unrelated across seeds.
    `salt` keeps two orders over the same rows independent (the trial rows use 'trial:')."""
    return hashlib.sha256(f"{salt}{seed}:{row_id}".encode()).hexdigest()


def stratified_order(items: list[dict], seed: int, stratum: Callable[[dict], str], salt: str = "share:") -> list[str]:
    """Row ids in an order whose every prefix is spread evenly over the strata: each stratum's
    rows are taken in a seeded order and interleaved by their place in it (the j-th of n stands
    at (j + 1/2) / n), so the first k rows hold round(k * n / N) of each stratum, give or take one,
    and a longer prefix keeps the rows of a shorter one."""
    groups: dict[str, list[str]] = {}
    for it in items:
        groups.setdefault(stratum(it), []).append(it["row_id"])
    ranked = []
    for ids in groups.values():
        ids.sort(key=lambda rid: seeded_rank(seed, rid))
        ranked += [((j + 0.5) / len(ids), seeded_rank(seed, rid, salt=salt), rid) for j, rid in enumerate(ids)]
    ranked.sort()
    return [rid for _, _, rid in ranked]


def at_least_n(sample: Callable[[int], list[str]], n: int, total: int) -> list[str]:
    """At least min(n, total) row ids from a stratified sampler whose strata round on their own.

    `sample(m)` may return fewer rows than m (eight labels of 12 rows and one of 4 give
    2+...+2+1 = 17 for 20) or more (at least one row per label). Its samples grow monotonically
    with m, so the rows missing are taken from the smallest larger sample that has enough: the
    rows whose strata round up next, which is largest-remainder apportionment. A sample that is
    already large enough is returned as it is."""
    rows = sample(n)
    if len(rows) >= n:
        return rows
    lo, hi = n, total  # sample(lo) is short; sample(total) holds every row
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(sample(mid)) >= n:
            hi = mid
        else:
            lo = mid
    base = sample(lo)
    have = set(base)
    extra = [r for r in sample(hi) if r not in have]
    return sorted(base + extra[:n - len(base)])


def exactly_n(sample: Callable[[int], list[str]], n: int, total: int,
              rank: Callable[[str], str]) -> list[str]:
    """Exactly min(n, total) row ids: `at_least_n`, then, when the strata gave more, the first n
    in the order `rank` gives (sorted by row id)."""
    rows = at_least_n(sample, n, total)
    if len(rows) > n:
        return sorted(sorted(rows, key=rank)[:n])
    return rows
