"""The `drumigen` command line as a user runs it: exit codes, one-line errors, files written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from daemon import checkpoint, kit, midifile
from shared.notes import Note
from tests.support import ROOT, free_port


def drumigen(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_no_daemon_is_one_clear_line_and_exit_3():
    r = drumigen("ping", "--endpoint", f"tcp://127.0.0.1:{free_port()}")
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0 and "drumigen serve" in r.stderr and "Traceback" not in r.stderr


def test_a_daemon_that_never_answers_is_exit_3_after_the_timeout():
    import zmq

    ctx = zmq.Context()
    silent = ctx.socket(zmq.ROUTER)  # takes the connection and the request, never replies
    try:
        port = silent.bind_to_random_port("tcp://127.0.0.1")
        r = drumigen("ping", "--endpoint", f"tcp://127.0.0.1:{port}", "--timeout", "0.5")
        assert r.returncode == 3, r.stderr
        assert "did not answer within 0.5 s" in r.stderr and "Traceback" not in r.stderr
    finally:
        silent.close(0)
        ctx.term()


def curve_router(tmp_path: Path, ctx, port: int = 0):
    """A CurveZMQ ROUTER that never answers, and the key file a client needs for it."""
    import zmq

    public, secret = zmq.curve_keypair()
    (tmp_path / "server.key").write_bytes(public + b"\n")
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
    if port:
        sock.bind(f"tcp://127.0.0.1:{port}")
    else:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, port, (public, secret)


def curve_ping(tmp_path: Path, port: int, timeout: str) -> subprocess.CompletedProcess:
    """`drumigen ping` over CurveZMQ with the key file curve_router wrote."""
    return drumigen("ping", "--endpoint", f"tcp://127.0.0.1:{port}", "--server-key", str(tmp_path / "server.key"),
                    "--timeout", timeout)


def test_over_curvezmq_an_unanswered_request_is_sent_once_carrying_the_whole_wait(tmp_path):
    """As the NULL client does: a daemon that has the request and is busy is waited for, not
    sent it again (its work would start over)."""
    import threading

    import msgpack
    import zmq

    ctx = zmq.Context()
    silent, port, _ = curve_router(tmp_path, ctx)
    heard: list[dict] = []

    def listen() -> None:
        while silent.poll(3000):
            heard.append(msgpack.unpackb(silent.recv_multipart()[-1]))

    try:
        thread = threading.Thread(target=listen)
        thread.start()
        r = curve_ping(tmp_path, port, "0.5")
        thread.join(15)
    finally:
        silent.close(0)
        ctx.term()
    assert r.returncode == 3 and "no answer from" in r.stderr and "within 0.5 s" in r.stderr, r.stderr
    assert [m["op"] for m in heard] == ["ping"] and 0.3 < heard[0]["timeout"] <= 0.5


def test_over_curvezmq_a_daemon_with_another_key_is_said_so_at_once(tmp_path):
    """Its handshake fails and the connection drops: it said "no answer within 20 s" after 0.2."""
    import zmq

    ctx = zmq.Context()
    other, port, _ = curve_router(tmp_path, ctx)
    (tmp_path / "server.key").write_bytes(zmq.curve_keypair()[0] + b"\n")  # not this daemon's
    try:
        r = curve_ping(tmp_path, port, "20")
    finally:
        other.close(0)
        ctx.term()
    assert r.returncode == 3 and "dropped 2 times: a daemon with a different server key" in r.stderr, r.stderr


def test_over_curvezmq_a_request_lost_with_its_connection_is_sent_again(tmp_path):
    """The daemon restarted mid-request: the REQ socket's request went with the connection, so
    it is sent once more on a fresh one, carrying what is left of the wait, and answered."""
    import threading

    import msgpack
    import zmq

    ctx = zmq.Context()
    first, port, keys = curve_router(tmp_path, ctx)
    heard: list[dict] = []

    def restart_then_answer() -> None:
        assert first.poll(20000)
        heard.append(msgpack.unpackb(first.recv_multipart()[-1]))
        first.close(0)  # gone mid-request
        second = ctx.socket(zmq.ROUTER)
        second.linger = 0
        second.curve_publickey, second.curve_secretkey = keys
        second.curve_server = True
        second.bind(f"tcp://127.0.0.1:{port}")
        try:
            assert second.poll(20000)
            identity, _, payload = second.recv_multipart()
            heard.append(msgpack.unpackb(payload))
            second.send_multipart([identity, b"", msgpack.packb({"id": heard[-1]["id"], "ok": True, "pong": True})])
            time.sleep(0.5)
        finally:
            second.close(0)

    thread = threading.Thread(target=restart_then_answer)
    thread.start()
    try:
        r = curve_ping(tmp_path, port, "20")
    finally:
        thread.join(30)
        ctx.term()
    assert r.returncode == 0, r.stderr
    assert [m["op"] for m in heard] == ["ping", "ping"] and heard[1]["timeout"] < heard[0]["timeout"]


@pytest.mark.parametrize("answer, command, said", [
    ({}, ("generate", "--style", "funk"), "has no field 'patterns'"),
    ({"patterns": [{"notes": []}]}, ("generate",), "has no field 'seed'"),
    ({"patterns": "none"}, ("generate",), "is not shaped as this drumigen reads it"),
    ({"patterns": []}, ("continue", "{clip}", "-o", "{out}"), "holds no patterns"),
    ({"patterns": [{"seed": 1, "notes": [{"pitch": 999, "start": 0.0, "duration": 0.1, "velocity": 90}]}]},
     ("generate",), "holds a note this drumigen cannot play (note pitch must be 0..127, got 999)"),
    ({"genres": ["funk"]}, ("styles",), "has no field 'presets'"),
])
def test_a_reply_this_drumigen_cannot_read_is_one_clear_line(tmp_path, answer, command, said):
    """An older daemon, or anything else that answers ok: a KeyError's traceback, or a bad note
    blamed on the user as bad_request."""
    import threading

    import msgpack
    import zmq

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def answer_one() -> None:
        if router.poll(60_000):
            identity, _, payload = router.recv_multipart()
            router.send_multipart([identity, b"", msgpack.packb({"id": msgpack.unpackb(payload)["id"], "ok": True,
                                                                 **answer})])

    clip = tmp_path / "clip.mid"
    midifile.write(clip, [Note(36, 0.0, 0.1, 100), Note(38, 1.0, 0.1, 100)], 120, (4, 4))
    args = [a.format(clip=clip, out=tmp_path / "out.mid") for a in command]
    thread = threading.Thread(target=answer_one, daemon=True)
    thread.start()
    try:
        r = drumigen(*args, "--endpoint", f"tcp://127.0.0.1:{port}")
    finally:
        thread.join(60)
        router.close(0)
        ctx.term()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and said in r.stderr and "another version" in r.stderr, r.stderr


def test_client_commands_talk_to_the_daemon(daemon):
    assert "answered in" in drumigen("ping", "--endpoint", daemon.endpoint).stdout
    info = drumigen("info", "--endpoint", daemon.endpoint).stdout
    assert "drumigen-gmd.pt" in info and "protocol      1" in info
    assert "funk" in drumigen("styles", "--endpoint", daemon.endpoint).stdout


def test_generate_writes_named_midi_files_that_read_back(daemon, tmp_path):
    r = drumigen("generate", "--endpoint", daemon.endpoint, "--style", "funk", "--bars", "2", "--tempo", "96",
                 "--time-signature", "6/8", "--count", "2", "--seed", "7", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["funk_96bpm_6-8_2bars_seed7.mid", "funk_96bpm_6-8_2bars_seed8.mid"]
    groove = midifile.read(tmp_path / files[0])
    assert groove.tempo == 96 and groove.meter == (6, 8) and groove.length == 6.0 and groove.notes
    assert "kick" in r.stdout or "snare" in r.stdout  # the grid was drawn


def test_generate_out_a_mid_file_writes_that_file(daemon, tmp_path):
    """`-o groove.mid`, as every other command takes it, made a folder named groove.mid."""
    one = drumigen("generate", "--endpoint", daemon.endpoint, "--bars", "1", "--seed", "2", "-q",
                   "-o", str(tmp_path / "groove.mid"))
    assert one.returncode == 0 and (tmp_path / "groove.mid").is_file(), one.stderr
    assert midifile.read(tmp_path / "groove.mid").length == 4.0
    two = drumigen("generate", "--endpoint", daemon.endpoint, "--count", "2", "-q", "-o", str(tmp_path / "two.mid"))
    assert two.returncode == 2 and "names one file for 2 grooves: give a folder" in two.stderr
    unsaved = drumigen("generate", "--endpoint", daemon.endpoint, "--bars", "1", "-q")
    assert unsaved.returncode == 0 and "not saved: --out FOLDER" in unsaved.stdout


def test_generate_refusals_exit_1_with_the_reason(daemon):
    r = drumigen("generate", "--endpoint", daemon.endpoint, "--style", "polka")
    assert r.returncode == 1 and "unknown style 'polka'" in r.stderr and "[unknown_style]" in r.stderr
    r = drumigen("generate", "--endpoint", daemon.endpoint, "--temperature", "99")
    assert r.returncode == 2 and "--temperature: must be 0.05..3, got 99" in r.stderr  # bad usage, as --bars 17 is


@pytest.mark.parametrize("focus", [(), ("--focus", "2")])
def test_local_generation_matches_the_daemon(daemon, tmp_path, focus):
    args = ("--style", "rock", "--bars", "1", "--seed", "5", "--quiet", *focus)
    via_daemon = drumigen("generate", "--endpoint", daemon.endpoint, *args, "--out", str(tmp_path / "d"))
    local = drumigen("generate", "--local", *args, "--out", str(tmp_path / "l"))
    assert via_daemon.returncode == local.returncode == 0
    (d,), (l,) = (list((tmp_path / x).iterdir()) for x in "dl")
    assert midifile.read(d).notes == midifile.read(l).notes


def test_show_draws_a_grid_and_refuses_corrupt_files(tmp_path):

    path = tmp_path / "g.mid"
    midifile.write(path, [Note(36, 0.0, 0.25, 110), Note(38, 1.0, 0.25, 90), Note(42, 0.5, 0.25, 30)], 100, (4, 4))
    r = drumigen("show", str(path))
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and "3 notes, 100 BPM, 4/4" in lines[0]
    assert next(l for l in lines if l.strip().startswith("kick")).split()[1] == "X"
    assert next(l for l in lines if "closed hat" in l).split()[2:5] == ["-", "-", "."]
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    bad = drumigen("show", str(tmp_path / "bad.mid"))
    assert bad.returncode == 1 and "not a readable MIDI file" in bad.stderr and "Traceback" not in bad.stderr


def test_show_into_a_pipe_its_reader_closed_ends_quietly_as_unix_tools_do(tmp_path):
    """`drumigen show g.mid | head -1` printed "drumigen: [Errno 32] Broken pipe" and exit 1."""
    path = tmp_path / "g.mid"
    midifile.write(path, [Note(36, 0.0, 0.25, 110)], 100, (4, 4))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a shell's pipe: block-buffered
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "show", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before it writes a line: its first write finds nobody reading
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGPIPE and err == ""


def test_show_png_draws_a_piano_roll_and_long_counts_stay_in_columns(tmp_path):

    path = tmp_path / "g.mid"
    midifile.write(path, [Note(36, 0.0, 0.25, 110), Note(42, 5.5, 0.25, 60), Note(22, 1.5, 0.25, 90)], 90, (12, 8))
    r = drumigen("show", str(path), "--png", str(tmp_path / "new" / "g.png"))  # its folder is made
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header, hat = lines[1], next(l for l in lines if l.strip().startswith("closed hat "))
    assert header.index("12") == hat.rindex("x")  # beat 5.5 is the 12th count, drawn under its number
    assert any(l.strip().startswith("closed hat edge") for l in lines)  # the TD-11 zone, named
    png = (tmp_path / "new" / "g.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > height > 100
    longer = tmp_path / "long.mid"
    midifile.write(longer, [Note(36, float(b), 0.25, 100) for b in range(32)], 90, (4, 4))
    assert drumigen("show", str(longer), "--png", str(tmp_path / "long.png")).returncode == 0
    assert int.from_bytes((tmp_path / "long.png").read_bytes()[16:20], "big") > width  # time runs along x


def test_files_that_cannot_be_written_or_seeds_out_of_range_are_one_line_and_exit_1(tmp_path):

    clip = tmp_path / "clip.mid"
    midifile.write(clip, [Note(36, float(b), 0.25, 100) for b in range(4)], 100, (4, 4), 4.0)
    (tmp_path / "taken").mkdir()
    for args in (("humanize", str(clip), "-o", str(tmp_path / "taken")),
                 ("fill", "--local", "-q", str(clip), "-o", str(tmp_path / "taken")),
                 ("show", str(clip), "--png", str(tmp_path / "taken"))):
        r = drumigen(*args)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "taken" in r.stderr, (args, r.stderr)
    seed = drumigen("humanize", str(clip), "--seed", "-3", "-o", str(tmp_path / "h.mid"))
    assert seed.returncode == 2 and "--seed" in seed.stderr and "0..2147483647" in seed.stderr


def test_a_file_of_more_notes_than_a_clip_holds_is_named_before_it_is_sent(daemon, tmp_path):
    """drumify sent 10,000 notes and printed the daemon's "request is not valid msgpack (10000
    exceeds max_array_len(8192))"."""
    big = tmp_path / "big.mid"
    midifile.write(big, [Note(36 + k % 10, k / 256, 0.001, 100) for k in range(5000)], 120, (4, 4), 20.0)
    for command in ("drumify", "continue", "humanize"):  # humanize runs in this process
        where = ("--endpoint", daemon.endpoint) if command != "humanize" else ()
        r = drumigen(command, str(big), *where, "-o", str(tmp_path / "out.mid"))
        assert r.returncode == 1 and r.stderr == f"drumigen: {big} holds 5000 notes; {command} takes clips of " \
                                                 "up to 4096\n", (command, r.stderr)


def test_humanizing_a_melody_warns_that_its_notes_are_no_drums(tmp_path):
    """Its notes are in the range humanize plays a feel into (GM 27-87), so it is not refused; it
    went through as "humanized 16 notes" without a word."""
    melody = tmp_path / "melody.mid"
    midifile.write(melody, [Note(64 + k % 12, k / 2, 0.5, 90) for k in range(16)], 100, (4, 4), 8.0)  # E4 up
    r = drumigen("humanize", str(melody), "-o", str(tmp_path / "out.mid"))
    assert r.returncode == 0 and "warning: 16 of the 16 notes" in r.stderr and "not drums the model hears" in r.stderr


def test_eval_without_enough_real_grooves_or_with_no_grooves_to_make_is_one_line(tmp_path):
    """`eval --per-genre 0`, or a dataset of a few takes, crashed deep in the style classifier."""
    r = drumigen("eval", "--no-nll", "--data", str(ROOT / "tests/data/groove-mini"), "--cache-dir", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "no genre has 25 or more" in r.stderr, r.stderr
    for flag, value in (("--per-genre", "0"), ("--guidance", "9"), ("--temperature", "0")):
        r = drumigen("eval", flag, value)
        assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = drumigen("eval", "--data", str(ROOT / "tests/data/groove-mini"), "--cache-dir", str(tmp_path))
    assert r.returncode == 1 and "no genre has 25 or more" in r.stderr  # but the likelihoods are not lost:
    assert "validation NLL: " in r.stdout and "test NLL: " in r.stdout and "nats/token" in r.stdout, r.stdout
    import shutil

    data = tmp_path / "no-validation"
    shutil.copytree(ROOT / "tests/data/groove-mini", data)
    lines = (data / "info.csv").read_text().splitlines()
    (data / "info.csv").write_text("\n".join(line for line in lines if not line.endswith(",validation")) + "\n")
    r = drumigen("eval", "--data", str(data), "--cache-dir", str(tmp_path))
    assert f"validation NLL: none, {data} has no validation-split performances" in r.stdout, r.stdout  # not "0.0000"


def test_keys_keep_a_pair_already_made_and_the_secret_is_its_owners_alone(tmp_path):
    """`drumigen keys` over a pair replaced it silently (every client holding the public key
    was locked out), and wrote the secret readable by all before narrowing it."""
    assert drumigen("keys", str(tmp_path)).returncode == 0
    public = (tmp_path / "server.key").read_bytes()
    again = drumigen("keys", str(tmp_path))
    assert again.returncode == 1 and "already holds a key pair" in again.stderr and "Traceback" not in again.stderr
    assert (tmp_path / "server.key").read_bytes() == public
    assert drumigen("keys", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / "server.key").read_bytes() != public
    assert (tmp_path / "server.key_secret").stat().st_mode & 0o777 == 0o600


def test_a_kit_map_file_maps_the_pieces(tmp_path):
    (tmp_path / "rack.json").write_text('{"map": {"36": 35, "38": 40}}')
    args = ("generate", "--local", "--style", "funk", "--bars", "1", "--seed", "1", "-q")
    gm = drumigen(*args, "--out", str(tmp_path / "gm"))
    rack = drumigen(*args, "--kit", str(tmp_path / "rack.json"), "--out", str(tmp_path / "rack"))
    assert gm.returncode == rack.returncode == 0, (gm.stderr, rack.stderr)
    [gm_file], [rack_file] = (tmp_path / "gm").glob("*.mid"), (tmp_path / "rack").glob("*.mid")
    pads = {36: 35, 38: 40}
    assert [(pads.get(n.pitch, n.pitch), n.start) for n in midifile.read(gm_file).notes] == \
        [(n.pitch, n.start) for n in midifile.read(rack_file).notes]


def test_a_built_in_kit_is_named_as_a_style_is():
    from daemon.cli import kit_arg

    assert kit_arg(" GMD") == "gmd" and kit_arg("Rack16") == "rack16"  # sent as the daemon's own names
    assert kit.load_map("RACK16") == kit.BUILTIN_MAPS["rack16"]


@pytest.mark.parametrize("args, exit_code, says", [
    (("generate", "--local", "--kit", "{missing}.json"), 2, "no kit map file"),
    (("generate", "--local", "--kit", "rack99"), 2, "unknown kit map 'rack99': use one of gm, gmd, rack16"),
    (("generate", "--local", "--kit", "{bad}"), 2, "not valid JSON"),
    (("ping", "--timeout", "0"), 2, "--timeout: must be 0.1..3600"),
    (("generate", "--local", "--tempo", "nan"), 2, "--tempo: must be 20..400, got nan"),
    (("generate", "--local", "--density", "1.5"), 2, "--density: must be 0..1, got 1.5"),
    (("generate", "--local", "--style", "funk:-1,jazz:1"), 2, "style weight in 'funk:-1' must be a number >= 0"),
    (("generate", "--local", "--style", "funk,hiphop"), 2, "a mix gives each style its weight, e.g. funk:0.5"),
    (("style", "learn", "x", "{clip}", "--steps", "0"), 2, "--steps: must be 1..100, got 0"),
    (("generate", "--local", "--kit", "{twice}"), 2, "'36' is given twice"),
    (("ping", "--endpoint", "bogus"), 2, "is not tcp://host:port"),
    (("generate", "--local", "--device", "bogus"), 2, "device must be auto, cpu, cuda, cuda:N or mps"),
    (("generate", "--local", "-q", "--checkpoint", "{bad}"), 1, "is not a MidiDrumiGen checkpoint"),
    (("generate", "--local", "-q", "--checkpoint", "{gutted}"), 1, "is a damaged checkpoint: it lacks vocab"),
    (("generate", "--local", "-q", "--checkpoint", "{foreign}"), 1, "is a damaged checkpoint (TypeError"),
    (("humanize", "{clip}", "-o", "{out}", "--checkpoint", "{clip}"), 1, "is not a MidiDrumiGen humanizer checkpoint"),
    (("humanize", "{clip}", "-o", "{out}", "--checkpoint", "{hollow}"), 1, "is a damaged humanizer checkpoint"),
    (("humanize", "{clip}", "-o", "{clip}/x.mid"), 1, "clip.mid is a file, not a folder"),
    (("generate", "--local", "-q", "--bars", "1", "--out", "{long}/grooves"), 1, "long.mid is a file, not a folder"),
    (("generate", "--local", "--style", "funk:0.9,jazz:0.1,Funk:0.1"), 2, "style 'Funk' is named twice in the mix"),
    (("generate", "--seed", "100000000000000000000"), 2, "--seed: must be 0..2147483647"),
    (("generate", "--seed", "9" * 5000), 2, "--seed: must be 0..2147483647, got 9999"),
    (("generate", "--bars", "99999999999999999999999"), 2, "--bars: must be 1..16"),
    (("fill", "x.mid", "-o", "y.mid", "--every", "0"), 2, "--every: must be 1..64"),
    (("ping", "--wait", "nan"), 2, "--wait: must be 0..3600"),
    (("serve", "--bind", "tcp://127.0.0.1:99999"), 2, "is not an endpoint like tcp://127.0.0.1:5555"),
    (("serve", "--bind", "garbage"), 2, "is not an endpoint like"),
    (("serve", "--threads", "-1"), 2, "--threads: must be 1..1024"),
    (("ping", "--server-key", "{bad}"), 1, "is not a CurveZMQ key"),
    (("serve", "--curve-secret", "{bad}", "--bind", "tcp://127.0.0.1:{port}", "--log-file", "{log}"), 1,
     "is not a CurveZMQ key"),
    (("generate", "--local", "--kit", "{deep}"), 2, "maximum recursion depth"),
    (("variation", "{long}", "-o", "{out}"), 1, "lasts 100 bars of 4/4; variation takes clips of up to 64 bars"),
    (("play", "--style", "funk", "--time-signature", "7-8"), 2, "time signature '7-8' is not like 4/4 or 7/8"),
    (("play", "--style", "funk", "--channel", "17"), 2, "--channel: must be 1..16, got 17"),
    (("play", "--style", "funk", "--bars", "0"), 2, "--bars: must be 1..16"),
])
def test_flags_that_cannot_work_are_one_line_not_a_traceback(tmp_path, args, exit_code, says):
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "twice.json").write_text('{"36": 60, "36": 61}')  # json.loads keeps the last, without a word
    midifile.write(tmp_path / "long.mid", [Note(36, 4.0 * b, 0.25, 90) for b in range(100)], 120, (4, 4))
    midifile.write(tmp_path / "clip.mid", [Note(36, b, 0.25, 90) for b in range(4)], 120, (4, 4))
    gutted = torch.load(checkpoint.BUNDLED, weights_only=True)
    del gutted["vocab"]
    torch.save(gutted, tmp_path / "gutted.pt")
    torch.save({"format_version": 1, "model_config": {"bogus": 1}, "model": {}, "vocab": {}, "meta": {}},
               tmp_path / "foreign.pt")
    torch.save({"format": "mididrumigen-humanizer", "version": 3}, tmp_path / "hollow.pt")
    paths = {"missing": tmp_path / "nope", "bad": tmp_path / "bad.json", "deep": tmp_path / "deep.json",
             "gutted": tmp_path / "gutted.pt", "foreign": tmp_path / "foreign.pt", "hollow": tmp_path / "hollow.pt",
             "log": tmp_path / "d.log", "port": free_port(), "long": tmp_path / "long.mid", "out": tmp_path / "o.mid",
             "clip": tmp_path / "clip.mid", "twice": tmp_path / "twice.json"}
    r = drumigen(*(a.format(**paths) for a in args))
    assert r.returncode == exit_code and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "weights_only" not in r.stderr  # torch's advice to unpickle code is not ours to pass on


@pytest.mark.parametrize("device, says, present", [
    ("cuda", "sees no CUDA GPU", lambda torch: torch.cuda.is_available()),
    ("mps", "sees no Apple GPU", lambda torch: torch.backends.mps.is_available()),
])
def test_a_gpu_asked_for_on_a_machine_without_one_says_so(device, says, present):
    import torch

    if present(torch):
        pytest.skip(f"this machine has {device}")
    r = drumigen("generate", "--local", "-q", "--device", device)
    assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["serve", "ping", "info", "styles", "generate", "continue", "variation", "fill", "humanize", "drumify", "show", "play", "style", "train", "train-humanizer", "eval", "keys"])
def test_every_command_has_help(command):
    r = drumigen(command, "--help")
    assert r.returncode == 0 and "usage: drumigen " + command in r.stdout


def test_version_names_the_package_and_the_protocol_the_installed_metadata_agrees():
    from importlib.metadata import version

    from daemon import __version__
    from shared.protocol import PROTOCOL_VERSION

    r = drumigen("--version")
    assert r.returncode == 0 and r.stdout == f"drumigen {__version__}, protocol {PROTOCOL_VERSION}\n"
    assert version("mididrumigen") == __version__  # pyproject reads it from daemon/__init__.py: one place
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dynamic"] == ["version"] and "version" not in project


def test_continue_through_the_daemon_grows_the_file(daemon, tmp_path):

    clip = tmp_path / "clip.mid"
    midifile.write(clip, [Note(36, b * 1.0, 0.25, 100) for b in range(8)] + [Note(38, 1.0 + 2 * b, 0.25, 100)
                                                                             for b in range(4)], 90, (4, 4), 8.0)
    r = drumigen("continue", str(clip), "--endpoint", daemon.endpoint, "--bars", "2", "--seed", "1", "-q",
                 "-o", str(tmp_path / "out.mid"))
    assert r.returncode == 0, r.stderr
    out = midifile.read(tmp_path / "out.mid")
    assert out.length == 16.0 and out.tempo == 90
    assert [n for n in out.notes if n.start < 8] == midifile.read(clip).notes
    assert any(n.start >= 8 for n in out.notes)


def test_drumify_a_rhythm_file_through_the_daemon(daemon, tmp_path):

    rhythm = tmp_path / "bass.mid"
    taps = [0.0, 0.75, 1.5, 2.5, 3.25]
    midifile.write(rhythm, [Note(40, t, 0.5, 90) for t in taps], 100, (4, 4), 4.0)
    r = drumigen("drumify", str(rhythm), "--endpoint", daemon.endpoint, "--style", "rock", "--seed", "3",
                 "-o", str(tmp_path / "drums.mid"))
    assert r.returncode == 0, r.stderr
    out = midifile.read(tmp_path / "drums.mid")
    assert out.length == 4.0 and set(taps) <= {n.start for n in out.notes} and len(out.notes) > len(taps)
    assert "drumify:" in r.stdout and "kick" in r.stdout  # the grid is drawn


def test_eval_refuses_a_strength_the_protocol_would_refuse(capsys):
    from daemon.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--strength", "9"])
    assert "must be 0..4, got 9" in capsys.readouterr().err
    assert build_parser().parse_args(["eval", "--strength", "2"]).strength == 2.0


def test_everything_but_ports_works_without_a_loadable_rtmidi(tmp_path):
    """python-rtmidi's wheel links ALSA's libasound.so.2, which a headless GPU server may lack (an
    H200 machine did): files and the model must not need it, and a port must say what is missing."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoALSA:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'rtmidi':\n"
        "            raise ImportError('libasound.so.2: cannot open shared object file')\n"
        "sys.meta_path.insert(0, NoALSA())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env=env)

    made = run("generate", "--local", "--device", "cpu", "--style", "funk", "--bars", "1", "--seed", "1",
               "--out", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    (out,) = (tmp_path / "out").iterdir()
    assert midifile.read(out).notes
    played = run("play", str(out))
    assert played.returncode == 1
    assert "python-rtmidi" in played.stderr and "libasound2" in played.stderr


def test_serve_with_a_log_file_keeps_the_terminal_for_trouble(tmp_path):
    """The quick start runs the daemon in the background of the shell: with --log-file given,
    its every request was logged into the terminal too."""
    from tests.support import DaemonProcess

    d = DaemonProcess(tmp_path).start()
    try:
        assert drumigen("generate", "--endpoint", d.endpoint, "--bars", "1", "-q").returncode == 0
    finally:
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(30)
    assert "INFO" not in d.proc.stderr.read().decode()
    logged = d.log_file.read_text()
    assert "listening on" in logged and "generated 1 requests" in logged


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file no write succeeds on")
def test_serve_with_a_log_file_it_cannot_write_says_so_once_and_serves(tmp_path):
    """Every log record printed a 20-line "--- Logging error ---" traceback to the terminal."""
    from tests.support import DaemonProcess

    d = DaemonProcess(tmp_path)
    d.log_file = Path("/dev/full")
    d.start()
    try:
        assert drumigen("generate", "--endpoint", d.endpoint, "--bars", "1", "-q").returncode == 0
    finally:
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(30)
    said = d.proc.stderr.read().decode()
    assert "Logging error" not in said and said.count("cannot be written") == 1, said
    assert "drumigen: the log file /dev/full cannot be written" in said


def test_a_log_record_that_cannot_be_formatted_is_not_taken_for_a_log_file_that_cannot_be_written(tmp_path, capsys):
    import logging

    from daemon.cli import LogFile

    handler = LogFile(tmp_path / "d.log")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "bad %d", ("not a number",), None)
    handler.emit(record)  # logging's own report of a bug in a log call
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "next", (), None))
    handler.close()
    assert not handler.failed and "cannot be written" not in capsys.readouterr().err
    assert (tmp_path / "d.log").read_text() == "next\n"


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://127.0.0.1:*",
                                      "tcp://127.0.0.1:0", "tcp://[::1]:5555", "tcp://lo:5555", "ipc:///tmp/drumigen"])
def test_serve_binds_what_zeromq_binds(endpoint):
    from daemon.cli import bind_arg

    assert bind_arg(endpoint) == endpoint


def test_a_file_past_the_models_tempos_is_heard_at_the_nearest_and_keeps_its_own(tmp_path):
    src, out = tmp_path / "fast.mid", tmp_path / "out.mid"
    midifile.write(src, [Note(36, float(b), 0.25, 100) for b in range(8)], 1200.0, (4, 4), length=8.0)
    r = drumigen("continue", str(src), "-o", str(out), "--bars", "1", "--seed", "3", "--local", "-q")
    assert r.returncode == 0, r.stderr  # the daemon's protocol takes 20-400 BPM: 1200 would be refused
    assert midifile.read(out).tempo == 1200.0
    r = drumigen("humanize", str(src), "-o", str(out), "--seed", "3")
    assert r.returncode == 0 and midifile.read(out).tempo == 1200.0, r.stderr


def test_show_names_a_racks_pads_by_the_drum_each_plays(tmp_path):
    (tmp_path / "rack.json").write_text('{"36": 36, "38": 37, "42": 38}')
    midifile.write(tmp_path / "rack.mid", [Note(38, k / 2, 0.1, 80) for k in range(8)] + [Note(37, 1.0, 0.1, 100)],
                   100.0, (4, 4), 4.0)
    r = drumigen("show", str(tmp_path / "rack.mid"), "--kit", str(tmp_path / "rack.json"))
    assert r.returncode == 0 and "closed hat (38)" in r.stdout and "snare (37)" in r.stdout, r.stderr


def test_a_clip_op_keeps_the_files_tempo_changes(tmp_path):
    """Written at the first tempo alone, a clip slowing to 90 BPM at bar 3 came back with its
    last bars 1.33 s shorter."""
    src, out = tmp_path / "slows.mid", tmp_path / "out.mid"
    midifile.write(src, [Note(36, float(b), 0.25, 100) for b in range(16)], 120.0, (4, 4), 16.0,
                   tempo_changes=((8.0, 90.0),))
    for op in (("continue", "--bars", "1", "--local", "-q"), ("humanize",)):
        r = drumigen(*op[:1], str(src), "-o", str(out), "--seed", "3", *op[1:])
        assert r.returncode == 0, r.stderr
        assert midifile.read(out).tempo_changes == ((8.0, 90.0),), op


def test_a_clip_op_on_a_rack_of_its_own_reads_and_writes_through_kit(daemon, tmp_path):
    """Pads 60/61 are kick and snare in this rack: heard as drums with --kit, kept in the result;
    without it the model would hear nothing, and is refused that rather than playing on from
    silence. A file that is mostly not drums is warned of."""
    (tmp_path / "rack.json").write_text('{"36": 60, "38": 61, "42": 62}')
    clip = tmp_path / "clip.mid"
    midifile.write(clip, [Note(60, b * 1.0, 0.25, 100) for b in range(4)] + [Note(61, 1.0, 0.25, 100)], 90, (4, 4), 4.0)
    with_kit = drumigen("continue", str(clip), "--endpoint", daemon.endpoint, "--bars", "2", "--seed", "1", "-q",
                        "--kit", str(tmp_path / "rack.json"), "-o", str(tmp_path / "out.mid"))
    assert with_kit.returncode == 0 and "warning" not in with_kit.stderr, with_kit.stderr
    new = [n for n in midifile.read(tmp_path / "out.mid").notes if n.start >= 4]
    assert new and {n.pitch for n in new} & {60, 61} and not {n.pitch for n in new} & {36, 38}
    melody = tmp_path / "melody.mid"
    midifile.write(melody, [Note(62 + 2 * k, k * 0.5, 0.5, 90) for k in range(8)], 90, (4, 4), 4.0)
    refused = drumigen("continue", str(melody), "--endpoint", daemon.endpoint, "-q", "-o", str(tmp_path / "m.mid"))
    assert refused.returncode == 1 and "none of the clip's 8 notes is on a drum the model plays" in refused.stderr
    # humanize plays a feel into any percussion (pitches 62-76 are congas to woodblocks), but puts a
    # snare ghost note only into a clip with drums; a line above GM's percussion keys is no drum part
    percussion = drumigen("humanize", str(melody), "--ghost-notes", "-o", str(tmp_path / "p.mid"))
    assert percussion.returncode == 0 and len(midifile.read(tmp_path / "p.mid").notes) == 8, percussion.stderr
    high = tmp_path / "high.mid"
    midifile.write(high, [Note(96 + 2 * k, k * 0.5, 0.5, 90) for k in range(8)], 90, (4, 4), 4.0)
    refused = drumigen("humanize", str(high), "-o", str(tmp_path / "h.mid"))
    assert refused.returncode == 1 and "none of the clip's 8 notes is a drum or percussion sound" in refused.stderr
    assert not (tmp_path / "h.mid").exists()
    mostly = tmp_path / "mostly.mid"
    midifile.write(mostly, [Note(36, 0.0, 0.25, 100)] + [Note(62 + 2 * k, k * 0.5, 0.5, 90) for k in range(4)], 90,
                   (4, 4), 4.0)
    warned = drumigen("variation", str(mostly), "--endpoint", daemon.endpoint, "-q", "-o", str(tmp_path / "v.mid"))
    assert warned.returncode == 0 and "warning: 4 of the 5 notes" in warned.stderr
