"""The replay window: ids remembered for a while, memory bounded."""

from __future__ import annotations

import pytest

from consumer.http.replay import ReplayWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_seen_until_its_ttl_passes() -> None:
    clock = Clock()
    window = ReplayWindow(ttl=60, max_size=10, clock=clock)
    window.remember("m1")

    clock.now = 59.9
    assert window.seen("m1")
    clock.now = 60.0
    assert not window.seen("m1")
    assert len(window) == 0


def test_memory_is_bounded_by_forgetting_the_oldest() -> None:
    window = ReplayWindow(ttl=3600, max_size=3, clock=Clock())
    for n in range(5):
        window.remember(f"m{n}")

    assert len(window) == 3
    assert [window.seen(f"m{n}") for n in range(5)] == [False, False, True, True, True]


def test_remembering_again_refreshes_the_ttl() -> None:
    clock = Clock()
    window = ReplayWindow(ttl=10, max_size=10, clock=clock)
    window.remember("m1")
    clock.now = 8
    window.remember("m1")
    clock.now = 15
    assert window.seen("m1")


def test_never_remembered_is_not_seen() -> None:
    assert not ReplayWindow(ttl=1, max_size=1).seen("m1")


@pytest.mark.parametrize(("ttl", "size"), [(0, 1), (1, 0), (-1, 5)])
def test_nonsense_bounds_are_refused(ttl: float, size: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ReplayWindow(ttl=ttl, max_size=size)
