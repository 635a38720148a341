"""The nemesis' pure parts: schedules from seeds and the shapes of its partitions."""

from __future__ import annotations

import itertools

import pytest

from tests.support.nemesis import KINDS, halves, ring_blocks, schedule


def draws(seed: int, count: int = 200, members: int = 5) -> list:
    nxt = schedule(seed, members, session_timeout_s=4.0)
    return [nxt() for _ in range(count)]


def test_a_seed_always_gives_the_same_schedule_and_seeds_differ():
    assert draws(11) == draws(11)
    assert draws(11) != draws(12)


def test_every_kind_is_drawn_and_pauses_stay_within_twice_the_session_timeout():
    faults = draws(3, count=400)
    assert {f.kind for f in faults} == set(KINDS)
    assert all(0 < f.hold_s <= 8.0 for f in faults if f.kind == "pause")
    assert all(1.0 <= f.hold_s <= 5.0 for f in faults if f.kind != "pause")


def hears(order: list[int]) -> dict[int, set[int]]:
    blocked = set(ring_blocks(order))
    return {dst: {src for src in order if (src, dst) not in blocked} for dst in order}


@pytest.mark.parametrize("n", [3, 5, 7])
def test_majorities_ring_every_member_hears_a_majority_and_no_two_the_same(n):
    order = list(range(1, n + 1))
    heard = hears(order)
    assert all(len(h) == n // 2 + 1 and dst in h for dst, h in heard.items())
    assert len({frozenset(h) for h in heard.values()}) == n


def test_majorities_ring_of_three_blocks_one_direction_of_each_link():
    blocks = ring_blocks([1, 2, 3])
    assert sorted(blocks) == [(1, 2), (2, 3), (3, 1)]  # 1 hears {1, 2}, 2 hears {2, 3}, 3 hears {3, 1}
    assert not any((b, a) in blocks for a, b in blocks)


@pytest.mark.parametrize("n", [3, 5])
def test_halves_split_into_a_minority_and_a_majority(n):
    for order in itertools.permutations(range(1, n + 1)):
        minority, majority = halves(list(order))
        assert sorted(minority + majority) == list(range(1, n + 1))
        assert 0 < len(minority) < len(majority)
