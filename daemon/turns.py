"""The worker's queue: jobs taken in turns by connection, not first come first served.

One client queueing twenty 16-bar requests must not hold another's one-bar press (or live
mode's next phrase) for half a minute: each connection has a line of its own, and the worker
takes one job from each line in turn (round-robin, as a ZeroMQ ROUTER reads its peers).
Within a line, first come first served. Thread-safe: the network thread puts, the worker takes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Job = TypeVar("Job")


class Turns(Generic[Job]):
    def __init__(self, maxsize: int, line_of: Callable[[Job], Hashable], per_line: int | None = None,
                 waits: Callable[[Job], bool] = lambda job: True) -> None:
        self.maxsize = maxsize
        self.per_line = maxsize if per_line is None else per_line
        self._line_of = line_of
        self._waits = waits  # whether a job still counts against its line (not cancelled meanwhile)
        self._lines: OrderedDict[Hashable, deque[Job]] = OrderedDict()  # whose turn is next first
        self._size = 0
        self._ready = threading.Condition()

    def qsize(self) -> int:
        return self._size

    def put_nowait(self, job: Job) -> None:
        """At the back of its connection's line; queue.Full (saying whose) when `per_line` jobs
        wait in its line, or `maxsize` in all."""
        line = self._line_of(job)
        with self._ready:
            waiting = sum(map(self._waits, self._lines.get(line, ())))
            if waiting >= self.per_line:
                raise queue.Full(f"this connection has {waiting} requests waiting")
            if self._size >= self.maxsize:
                raise queue.Full(f"the daemon has {self._size} requests waiting")
            self._lines.setdefault(line, deque()).append(job)
            self._size += 1
            self._ready.notify()

    def get(self, timeout: float) -> Job:
        """The next line's first job, waiting up to `timeout` seconds; queue.Empty if none came."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while not self._size:
                left = deadline - time.monotonic()
                if left <= 0 or not self._ready.wait(left):
                    if not self._size:
                        raise queue.Empty
            return self._take()

    def get_nowait(self) -> Job:
        with self._ready:
            if not self._size:
                raise queue.Empty
            return self._take()

    def _take(self) -> Job:
        line, jobs = next(iter(self._lines.items()))
        job = jobs.popleft()
        self._size -= 1
        if jobs:
            self._lines.move_to_end(line)  # its next job waits for the other lines' turns
        else:
            del self._lines[line]
        return job
