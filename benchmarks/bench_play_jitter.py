#!/usr/bin/env python
"""Timing jitter of `drumigen play`: how far from its deadline each MIDI event leaves.

A Groove MIDI Dataset beat with 16th-note closed hi-hats laid over it is played at 180 BPM
through a real JACK MIDI port (a private `jackd -d dummy` server) with the same Player that
`drumigen play` uses, repeated until at least 2,000 events (note-ons and note-offs) are sent.

* send error: perf_counter() right after the port's send() returned, minus the event's
  deadline. This is the scheduler's own error (the issue's goal: p99 <= 2 ms at 180 BPM).
* receive error: arrival at a JACK MIDI input polled in another process (so it does not
  compete for this one's GIL), minus the deadline. JACK moves MIDI once per period (--period
  frames at 48 kHz), so this adds up to one period on top. perf_counter is CLOCK_MONOTONIC on
  Linux, the same clock in both processes.

The player asks for SCHED_FIFO as `drumigen play` does; --no-realtime measures without it.
Run (about 45 s)::

    .venv/bin/python benchmarks/bench_play_jitter.py [--no-realtime] [--spin-ms 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import statistics
import sys
import time
from pathlib import Path

import rtmidi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon import midifile, ports  # noqa: E402
from daemon.clock import FixedTempo  # noqa: E402
from daemon.scheduler import SPIN_S, FixedSource, Phrase, Player  # noqa: E402
from shared.notes import Note  # noqa: E402
from tests.daemon.jack_support import dummy_server  # noqa: E402

GROOVE = (Path(__file__).resolve().parents[2] / "shared/datasets/groove"
          / "drummer1/eval_session/1_funk-groove1_138_beat_4-4.mid")  # 16 bars of funk, 666 notes with hats
CLOSED_HAT = 42
SINK = "bench-sink"
DRAIN_S = 0.5  # the sink stops after this long without a message


def hats_over(groove: midifile.Groove) -> list[Note]:
    """The groove plus a closed hi-hat on every 16th, accented on the beat."""
    hats = [Note(CLOSED_HAT, i / 4, 0.1, 100 if i % 4 == 0 else 70) for i in range(int(groove.length * 4))]
    return groove.notes + hats


def repeated(notes: list[Note], length: float, times: int) -> list[Note]:
    return [Note(n.pitch, n.start + k * length, n.duration, n.velocity) for k in range(times) for n in notes]


def summary(errors_s: list[float]) -> dict:
    ms = sorted(e * 1000 for e in errors_s)
    q = statistics.quantiles(ms, n=1000, method="inclusive")
    return {
        "events": len(ms), "median_ms": q[499], "p90_ms": q[899], "p99_ms": q[989], "p99_9_ms": q[998],
        "max_ms": ms[-1], "min_ms": ms[0], "mean_ms": statistics.fmean(ms),
        "over_1ms": sum(e > 1 for e in ms) / len(ms), "over_2ms": sum(e > 2 for e in ms) / len(ms),
    }


def sink(name: str, conn: multiprocessing.connection.Connection) -> None:
    """In a child process: record (arrival time, message) at a virtual JACK input until told."""
    arrivals: list[tuple[float, list[int]]] = []
    port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench")
    port.open_virtual_port(name)
    conn.send("ready")
    quiet_since = None  # after "done", stop once nothing arrived for DRAIN_S
    while quiet_since is None or time.perf_counter() - quiet_since < DRAIN_S:
        event = port.get_message()  # polled: rtmidi's input callback garbles simultaneous messages
        if event is not None:
            arrivals.append((time.perf_counter(), event[0]))
            quiet_since = None if quiet_since is None else time.perf_counter()
            continue
        if quiet_since is None and conn.poll():
            conn.recv()
            quiet_since = time.perf_counter()
        time.sleep(0.0002)
    port.delete()
    conn.send(arrivals)


def run(args: argparse.Namespace) -> dict:
    groove = midifile.read(args.groove)
    one_pass = Phrase.build(hats_over(groove), groove.length, groove.meter, "bench", 9)
    times = math.ceil(args.events / len(one_pass.events))
    notes = repeated(list(one_pass.notes), groove.length, times)
    phrase = Phrase.build(notes, groove.length * times, groove.meter, "bench", 9)
    conn, child_conn = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=sink, args=(SINK, child_conn))
    child.start()
    conn.recv()
    output = ports.open_output(ports.backend("jack"), SINK, None)
    player = Player(output, FixedSource(phrase, loop=False), FixedTempo(args.bpm), channel=9,
                    spin=args.spin_ms / 1000, realtime=not args.no_realtime, record=True)
    load = os.getloadavg()[0]
    player.run()
    output.close()
    conn.send("done")
    arrivals = conn.recv()
    child.join()
    timing = player.timing or []
    notes_in = [t for t, msg in arrivals if msg[0] & 0xE0 == 0x80]  # note-on/off, not the final CC 123
    result = {
        "bpm": args.bpm, "spin_ms": args.spin_ms, "realtime": player.realtime_granted,
        "jack_period_frames": args.period,
        "seconds": (timing[-1][0] - timing[0][0]) if timing else 0.0, "load_avg_1min": load,
        "send": summary([sent - deadline for deadline, sent in timing]),
    }
    if len(notes_in) == len(timing):
        result["receive"] = summary([t - deadline for t, (deadline, _) in zip(notes_in, timing)])
    else:
        result["receive_mismatch"] = f"{len(notes_in)} received for {len(timing)} sent"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--groove", type=Path, default=GROOVE)
    parser.add_argument("--bpm", type=float, default=180.0)
    parser.add_argument("--events", type=int, default=2000, help="at least this many events")
    parser.add_argument("--spin-ms", type=float, default=SPIN_S * 1000, help="busy-wait before each deadline")
    parser.add_argument("--no-realtime", action="store_true", help="measure without SCHED_FIFO")
    parser.add_argument("--period", type=int, default=64, help="JACK period in frames at 48 kHz")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    with dummy_server(f"drumigen-bench-{os.getpid()}", period=args.period):
        result = run(args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
