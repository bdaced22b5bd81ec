"""The daemon under load, through real sockets: the numbers issue 3 asks for.

    .venv/bin/python benchmarks/bench_daemon.py [--clients 16] [--requests 50] [--malformed 10000] [--superseded N]

1. Cold start: from `drumigen serve` launched to its first `ping` reply (model loaded).
2. Sustained load: N clients (the Live-side stdlib client, each in its own thread) each send
   M `generate` requests (1 bar, 1 variation) back to back; every reply is checked, latency
   is measured per request; p50/p99 and throughput are printed.
3. Abuse: K malformed requests of many kinds over a REQ socket; every one must get an error
   reply, the daemon must still answer `ping`, and its resident memory must stay flat.
4. A superseded press: while the daemon samples 16 bars x 16 variations, a 4-bar request
   replaces it, as a second press in Live does. How long the new one takes when the client
   forgets the old one (and so cancels it on the daemon, as the Live client does), against
   leaving the old one to run; medians over S runs of each, interleaved.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.client import DaemonClient  # noqa: E402
from tests.support import free_port  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def cold_start(endpoint: str, log: Path, device: str = "auto") -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve", "--bind", endpoint, "--log-file", str(log),
                             "--device", device],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = zmq.Context.instance().socket(zmq.REQ)  # libzmq reconnects every 10 ms until the daemon binds
    sock.setsockopt(zmq.RECONNECT_IVL, 10)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send(msgpack.packb({"op": "ping", "id": 0}))
    if not sock.poll(60_000) or proc.poll() is not None:
        raise SystemExit("daemon did not answer within 60 s")
    sock.recv()
    sock.close()
    return proc, time.perf_counter() - started


def load(endpoint: str, clients: int, requests: int) -> None:
    latencies: list[float] = []
    failures: list[str] = []
    barrier = threading.Barrier(clients)

    def client(c: int) -> None:
        with DaemonClient(endpoint, timeout=60, retries=0) as dc:
            barrier.wait()
            for i in range(requests):
                t = time.perf_counter()
                reply = dc.call("generate", style=random.choice(["funk", "rock", "jazz", "hiphop"]), bars=1,
                                seed=c * 1000 + i)
                latencies.append(time.perf_counter() - t)
                if not (reply.ok and reply.data["patterns"][0]["notes"]):
                    failures.append(f"{c}/{i}: {reply.error_code} {reply.error_message}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    total = clients * requests
    print(f"load: {clients} clients x {requests} generate (1 bar): {len(latencies)}/{total} answered, "
          f"{len(failures)} failed, lost {total - len(latencies)}")
    print(f"      latency p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms,"
          f" max {max(latencies) * 1000:.0f} ms; {total / wall:.1f} requests/s over {wall:.1f} s")
    for f in failures[:5]:
        print("      failure", f)


MALFORMED = [
    lambda r: r.randbytes(r.randint(0, 64)),
    lambda r: msgpack.packb([r.random()] * r.randint(0, 5)),
    lambda r: msgpack.packb({"op": r.choice(["gen", "", "GENERATE", None]), "id": r.randint(0, 9)}),
    lambda r: msgpack.packb({"op": "generate", "id": 1, "tempo": r.choice([float("nan"), float("inf"), -5, 1e12])}),
    lambda r: msgpack.packb({"op": "generate", "id": 1, "bars": r.choice([0, -1, 10**9, "4", 2.5, True])}),
    lambda r: msgpack.packb({"op": "generate", "id": 1, "style": r.choice(["polka", {"x": 1}, [], 7])}),
    lambda r: msgpack.packb({"op": "generate", "id": 1, "time_signature": r.choice([[0, 4], [4, 3], "4/4", [4]])}),
    lambda r: b"\x91" * r.randint(1000, 50_000),  # deep nesting
    lambda r: b"\xdb\xff\xff\xff\xff",  # a 4 GiB string header with no body
]


def abuse(endpoint: str, count: int, pid: int) -> None:
    rng = random.Random(0)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    rss = []
    errors = 0
    started = time.perf_counter()
    for i in range(count):
        sock.send(rng.choice(MALFORMED)(rng))
        if not sock.poll(10_000):
            raise SystemExit(f"malformed request {i} got no reply")
        reply = msgpack.unpackb(sock.recv(), raw=False)
        errors += reply.get("ok") is False
        if i % (count // 10) == 0:
            rss.append(rss_mib(pid))
    wall = time.perf_counter() - started
    sock.send(msgpack.packb({"op": "ping", "id": 1}))
    alive = sock.poll(5000) and msgpack.unpackb(sock.recv(), raw=False)["ok"]
    sock.close()
    rss.append(rss_mib(pid))
    print(f"abuse: {count} malformed requests, {errors} error replies, daemon alive: {bool(alive)}, "
          f"{count / wall:.0f} requests/s")
    print("       RSS MiB every 10%: " + " ".join(f"{x:.1f}" for x in rss))


def superseded(endpoint: str, runs: int) -> None:
    times: dict[str, list[float]] = {"old one cancelled": [], "old one left to run": []}
    with DaemonClient(endpoint, timeout=120, retries=0) as dc:
        for i in range(runs):
            for case, spent in times.items():
                old = dc.send("generate", bars=16, variations=16, seed=i)
                dc.poll(0.3)  # sent; the worker is sampling it
                started = time.perf_counter()
                new = dc.send("generate", style="funk", bars=4, seed=i)
                if case == "old one cancelled":
                    dc.forget(old)
                waiting, replies = {new} | ({old} if case == "old one left to run" else set()), {}
                while waiting - replies.keys():
                    for reply in dc.poll(0.01):
                        replies[reply.id] = reply
                        if reply.id == new:
                            spent.append(time.perf_counter() - started)
                if not all(r.ok for r in replies.values()):
                    raise SystemExit(f"superseded: a request failed: {list(replies.values())}")
    for case, spent in times.items():
        print(f"superseded press, {case}: the new 4 bars in {statistics.median(spent) * 1000:.0f} ms "
              f"(median of {runs}; min {min(spent) * 1000:.0f}, max {max(spent) * 1000:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--malformed", type=int, default=10_000)
    parser.add_argument("--superseded", type=int, default=7, help="runs of the superseded-press case")
    args = parser.parse_args()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        proc, seconds = cold_start(endpoint, Path(tmp) / "daemon.log")
        try:
            print(f"cold start to first ping reply: {seconds:.2f} s (CPU cores: {os.cpu_count()})")
            load(endpoint, args.clients, args.requests)
            abuse(endpoint, args.malformed, proc.pid)
            superseded(endpoint, args.superseded)
        finally:
            proc.send_signal(signal.SIGTERM)
            print(f"SIGTERM: exit code {proc.wait(timeout=60)}")


if __name__ == "__main__":
    main()
