"""A stand-in for shared.client.DaemonClient in unit tests: records requests, hands out set replies.

The real client and the real daemon meet in test_script_e2e.py; here the script's own decisions
(what it sends, what it writes, what it says) are tested without sockets or timing.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

from shared.client import Reply


class Sent(NamedTuple):
    id: int
    op: str
    fields: dict


class StubClient:
    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.connected = True
        self.closed = False
        self.forgotten: list[int] = []
        self._replies: list[Reply] = []
        self._ids = itertools.count(1)

    def send(self, op: str, **fields: object) -> int:
        request_id = next(self._ids)
        self.sent.append(Sent(request_id, op, fields))
        return request_id

    def forget(self, request_id: int) -> None:
        self.forgotten.append(request_id)

    def poll(self, timeout: float = 0.0) -> list[Reply]:
        replies, self._replies = self._replies, []
        return replies

    def close(self) -> None:
        self.closed = True

    def last(self, op: str) -> Sent:
        return [s for s in self.sent if s.op == op][-1]

    def ops(self) -> list[str]:
        return [s.op for s in self.sent]

    def answer(self, request: Sent, **data: object) -> None:
        self._replies.append(Reply(request.id, True, {"id": request.id, "ok": True, **data}))

    def fail(self, request: Sent, code: str, message: str) -> None:
        error = {"code": code, "message": message}
        self._replies.append(Reply(request.id, False, {"id": request.id, "ok": False, "error": error}, code, message))
