"""What the Remote Script costs Live's main thread: decoding a reply, and writing a clip.

    .venv/bin/python benchmarks/bench_live_script.py [--runs 41]

Live runs the script's tick on its main thread (the UI), so every tick should stay near 1 ms.
Measured here, with the script's own pure-Python msgpack decoder (shared/msgpack_codec.py, as
inside Live) and the fake Live of tests/remote_script:
- decoding a big reply (16 variations x 200 notes) sent as note maps, and sent `packed`
  (one bin of records per pattern, what the script asks for), plus unpacking the one pattern
  that gets written;
- the tick that applies a reply and writes 200 notes into a new clip in one undo step, and a
  `next_variation` press that rewrites the clip with the next 200 notes;
- a tick while a request waits on a daemon that accepted the connection and never answers, and
  one while no daemon is there at all (the script's real client: the tests check that no tick
  ever waits on the socket; this is what watching it costs).
Medians (and the worst run) of --runs repetitions.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "remote_script" / "fake_live"), str(ROOT / "tests" / "remote_script")]

import msgpack  # noqa: E402
from live_host import LiveHost  # noqa: E402  (the fake Live)
from shipped import controls  # noqa: E402
from stub_client import StubClient  # noqa: E402

from remote_script import surface  # noqa: E402
from shared.msgpack_codec import unpackb  # noqa: E402
from shared.notes import Note, pack_notes, unpack_notes  # noqa: E402

VARIATIONS, NOTES = 16, 200
GENERIC = controls("generic")


def timed(fn, runs: int) -> tuple[float, float]:
    costs = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        costs.append(time.perf_counter() - start)
    return statistics.median(costs) * 1e3, max(costs) * 1e3


def patterns() -> list[list[Note]]:
    return [[Note(36 + i % 12, round(i * 0.0625 + v / 64, 6), 0.25, 64 + i % 60) for i in range(NOTES)]
            for v in range(VARIATIONS)]


def decoding(runs: int) -> None:
    found = patterns()
    as_maps = msgpack.packb({"id": 1, "ok": True, "patterns": [
        {"seed": v, "notes": [n.to_wire() for n in notes]} for v, notes in enumerate(found)]})
    as_packed = msgpack.packb({"id": 1, "ok": True, "patterns": [
        {"seed": v, "packed": pack_notes(notes)} for v, notes in enumerate(found)]})
    print(f"reply of {VARIATIONS} x {NOTES} notes: {len(as_maps):,} bytes as maps, {len(as_packed):,} packed")
    print("| decode on Live's thread | median ms | worst ms |\n|---|---|---|")
    for label, fn in (("note maps (the whole reply)", lambda: unpackb(as_maps)),
                      ("packed (the whole reply)", lambda: unpackb(as_packed)),
                      ("packed + unpack the pattern written", lambda: unpack_notes(unpackb(as_packed)["patterns"][0]["packed"]))):
        median, worst = timed(fn, runs)
        print(f"| {label} | {median:.3f} | {worst:.3f} |")


def writing(runs: int) -> None:
    stub = StubClient()
    live = LiveHost(lambda c_instance: surface.DrumSurface(c_instance, client=stub))
    replies = [{"seed": v, "packed": pack_notes(notes)} for v, notes in enumerate(patterns()[:2])]
    apply, cycle = [], []
    for index in range(runs):
        slot = live.slot(index % 8)
        if slot.has_clip:
            slot.delete_clip()
        live.select(slot)
        live.press(GENERIC["generate"])
        stub.answer(stub.last("generate"), patterns=replies)
        apply.append(live.tick())
        start = time.perf_counter()
        live.press(GENERIC["next_variation"])
        cycle.append(time.perf_counter() - start)
        assert len(slot.clip.get_all_notes_extended()) == NOTES
    live.script.disconnect()
    print(f"\n| write {NOTES} notes (one undo step) | median ms | worst ms |\n|---|---|---|")
    print(f"| the tick that applies a reply (new clip) | {statistics.median(apply) * 1e3:.3f} | {max(apply) * 1e3:.3f} |")
    print(f"| a next_variation press (rewrite) | {statistics.median(cycle) * 1e3:.3f} | {max(cycle) * 1e3:.3f} |")


def waiting(runs: int) -> None:
    with socket.socket() as hung, socket.socket() as gone, tempfile.TemporaryDirectory() as tmp:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        gone.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        print("\n| a tick while a generate request waits | median ms | worst ms |\n|---|---|---|")
        for label, sock in (("on a daemon that never answers", hung), ("with no daemon running", gone)):
            settings = Path(tmp) / "settings.json"
            settings.write_text(json.dumps({"endpoint": f"tcp://127.0.0.1:{sock.getsockname()[1]}"}))
            surface.SETTINGS_FILE = settings
            live = LiveHost(surface.DrumSurface)
            live.select(live.slot(0))
            live.press(GENERIC["generate"])
            costs = [live.tick() for _ in range(runs * 10)]
            live.script.disconnect()
            print(f"| {label} | {statistics.median(costs) * 1e3:.3f} | {max(costs) * 1e3:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=41)
    args = ap.parse_args()
    decoding(args.runs)
    writing(args.runs)
    waiting(args.runs)


if __name__ == "__main__":
    main()
