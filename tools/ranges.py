"""Sets of event ids as sorted, disjoint, inclusive (first, last) ranges.

Runs hold millions of sequential ids, so every set the tools handle is kept as ranges: memory and
work grow with the number of gaps, not the number of ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Range = tuple[int, int]


def normalize(ranges: Iterable[Range]) -> list[Range]:
    """Sort and merge overlapping or adjacent ranges; drop empty ones (first > last)."""
    out: list[Range] = []
    for first, last in sorted(r for r in ranges if r[0] <= r[1]):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def total(ranges: Iterable[Range]) -> int:
    return sum(last - first + 1 for first, last in ranges)


def subtract(a: list[Range], b: list[Range]) -> list[Range]:
    """a minus b; both normalized. One merge pass."""
    out: list[Range] = []
    j = 0
    for first, last in a:
        cur = first
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= last:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            if cur > last:
                break
            k += 1
        if cur <= last:
            out.append((cur, last))
    return out


def intersect(a: list[Range], b: list[Range]) -> list[Range]:
    """a intersected with b; both normalized."""
    out: list[Range] = []
    i = j = 0
    while i < len(a) and j < len(b):
        first = max(a[i][0], b[j][0])
        last = min(a[i][1], b[j][1])
        if first <= last:
            out.append((first, last))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def ids(ranges: Iterable[Range], limit: int) -> list[int]:
    """The first `limit` ids of the set, for samples in messages and reports."""
    out: list[int] = []
    for first, last in ranges:
        for i in range(first, min(last, first + limit - len(out) - 1) + 1):
            out.append(i)
        if len(out) >= limit:
            break
    return out


def from_sorted_ids(sorted_ids: Iterable[int]) -> Iterator[Range]:
    """Compress ascending ids into ranges (duplicates collapse)."""
    first = last = None
    for i in sorted_ids:
        if last is not None and i <= last + 1:
            last = max(last, i)
            continue
        if first is not None and last is not None:
            yield (first, last)
        first = last = i
    if first is not None and last is not None:
        yield (first, last)
