"""Range-set arithmetic against Python sets on random inputs."""

from __future__ import annotations

import random

from tools import ranges


def as_set(rs: list[tuple[int, int]]) -> set[int]:
    return {i for a, b in rs for i in range(a, b + 1)}


def random_ranges(rng: random.Random) -> list[tuple[int, int]]:
    out = []
    for _ in range(rng.randint(0, 8)):
        a = rng.randint(0, 60)
        out.append((a, a + rng.randint(-1, 10)))  # includes empty (first > last) ranges
    return out


def test_normalize_merges_overlaps_and_adjacency() -> None:
    assert ranges.normalize([(5, 9), (0, 2), (3, 4), (20, 19), (8, 12)]) == [(0, 12)]
    assert ranges.normalize([(0, 1), (3, 4)]) == [(0, 1), (3, 4)]


def test_set_operations_match_python_sets() -> None:
    rng = random.Random(1)
    for _ in range(500):
        a = ranges.normalize(random_ranges(rng))
        b = ranges.normalize(random_ranges(rng))
        assert as_set(ranges.subtract(a, b)) == as_set(a) - as_set(b)
        assert as_set(ranges.intersect(a, b)) == as_set(a) & as_set(b)
        assert ranges.total(a) == len(as_set(a))
        # results are normalized too (sorted, disjoint)
        assert ranges.normalize(ranges.subtract(a, b)) == ranges.subtract(a, b)


def test_ids_and_compression() -> None:
    assert ranges.ids([(0, 2), (10, 20)], 5) == [0, 1, 2, 10, 11]
    assert ranges.ids([(0, 2)], 10) == [0, 1, 2]
    assert list(ranges.from_sorted_ids([1, 2, 3, 3, 7, 9, 10])) == [(1, 3), (7, 7), (9, 10)]
    assert list(ranges.from_sorted_ids([])) == []
