"""Test helpers importable from any test module: paths, free ports, a real daemon process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# 15 real GMD performances (CC BY 4.0, see its LICENSE): every meter GMD has, beats and a fill,
# train, validation and test split, so tokenizer and training tests run anywhere in seconds.
GROOVE_MINI = ROOT / "tests" / "data" / "groove-mini"


def techno_clip(clap: bool, crash: bool) -> tuple[list, float, tuple[int, int], float]:
    """Four bars as a producer programs them, as (notes, tempo, meter, length): a kick on every
    beat, an open hat on every off-beat, closed hats on the other 16ths, claps (or a snare) on 2
    and 4, a crash on the last bar if asked."""
    from shared.notes import Note

    notes = []
    for t in range(16):
        notes += [Note(36, t, 0.25, 110), Note(46, t + 0.5, 0.25, 90)]
        notes += [Note(42, t + s / 4, 0.1, 80 if s == 0 else 70) for s in (0, 1, 3)]
        if t % 2:
            notes.append(Note(39 if clap else 38, t, 0.25, 100))
    if crash:
        notes.append(Note(49, 12.0, 0.5, 100))
    return notes, 125.0, (4, 4), 16.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    """`drumigen serve` in a subprocess on a fixed loopback port, so it can be killed and restarted."""

    def __init__(self, tmp: Path, checkpoint: Path | None = None) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.log_file = tmp / "daemon.log"
        self.styles = tmp / "styles"  # learned styles, kept out of the user's own folder
        self.checkpoint = checkpoint
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "DaemonProcess":
        cmd = [sys.executable, "-m", "daemon.cli", "serve", "--bind", self.endpoint, "--threads", "1",
               "--log-file", str(self.log_file), "--styles", str(self.styles)]
        if self.checkpoint:
            cmd += ["--checkpoint", str(self.checkpoint)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        from shared.client import DaemonClient

        deadline = time.monotonic() + timeout
        with DaemonClient(self.endpoint, timeout=0.5, retries=0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited: {self.proc.stderr.read().decode()[-2000:]}")
                if client.call("ping").ok:
                    return
                time.sleep(0.05)
        raise RuntimeError(f"daemon at {self.endpoint} not ready after {timeout} s")

    def stop(self, sig: int = signal.SIGKILL) -> int | None:
        """Kill (default) or signal the daemon and wait for it; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc.stderr.close()
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
