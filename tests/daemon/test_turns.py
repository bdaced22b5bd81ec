from __future__ import annotations

import queue
import threading

import pytest

from daemon.turns import Turns


def by_owner(job: tuple[str, int]) -> str:
    return job[0]


def test_lines_take_turns_and_each_line_keeps_its_order():
    turns = Turns(100, by_owner)
    for i in range(4):
        turns.put_nowait(("flood", i))
    turns.put_nowait(("press", 0))
    turns.put_nowait(("live", 0))
    turns.put_nowait(("press", 1))
    taken = [turns.get_nowait() for _ in range(7)]
    assert taken == [("flood", 0), ("press", 0), ("live", 0), ("flood", 1), ("press", 1), ("flood", 2), ("flood", 3)]
    assert turns.qsize() == 0


def test_a_line_that_empties_joins_the_back_when_it_comes_again():
    turns = Turns(100, by_owner)
    turns.put_nowait(("a", 0))
    turns.put_nowait(("b", 0))
    turns.put_nowait(("b", 1))
    assert turns.get_nowait() == ("a", 0)
    turns.put_nowait(("a", 1))  # after b's line, which was waiting
    assert [turns.get_nowait() for _ in range(3)] == [("b", 0), ("a", 1), ("b", 1)]


def test_full_counts_every_line_and_empty_says_so():
    turns = Turns(3, by_owner)
    for owner in "abc":
        turns.put_nowait((owner, 0))
    with pytest.raises(queue.Full):
        turns.put_nowait(("d", 0))
    assert turns.qsize() == 3
    for _ in range(3):
        turns.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        turns.get_nowait()
    with pytest.raises(queue.Empty):
        turns.get(timeout=0.01)


def test_get_wakes_when_a_job_arrives():
    turns = Turns(10, by_owner)
    got: list = []
    taker = threading.Thread(target=lambda: got.append(turns.get(timeout=30)))
    taker.start()
    turns.put_nowait(("a", 0))
    taker.join(timeout=30)
    assert got == [("a", 0)] and not taker.is_alive()


def test_one_line_is_full_before_the_queue_is():
    """A flood from one connection is refused while the others' requests are still taken."""
    turns = Turns(10, by_owner, per_line=3)
    for i in range(3):
        turns.put_nowait(("flood", i))
    with pytest.raises(queue.Full, match="this connection has 3 requests waiting"):
        turns.put_nowait(("flood", 3))
    turns.put_nowait(("press", 0))
    assert turns.qsize() == 4


def test_jobs_nobody_waits_for_make_room_in_their_line():
    """Live's superseded presses, cancelled while a style is learned, kept its line full."""
    turns = Turns(10, by_owner, per_line=2, waits=lambda job: job[1] >= 0)  # a negative job: cancelled
    turns.put_nowait(("live", -1))
    turns.put_nowait(("live", -2))
    turns.put_nowait(("live", 0))
    turns.put_nowait(("live", 1))
    with pytest.raises(queue.Full, match="this connection has 2 requests waiting"):
        turns.put_nowait(("live", 2))
