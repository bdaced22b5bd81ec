"""Phrases to events, the event queue, and the player's note pairing, against a recording port.

The same Player on real JACK ports is in test_play.py; here timing is not the point.
"""

from __future__ import annotations

import threading
import time

import mido

from daemon.clock import FixedTempo
from daemon.scheduler import OFF, ON, FixedSource, Phrase, Player, Sequencer, note_events
from shared.notes import Note

CH = 9


class Recorder:
    """An output port that keeps what it is sent."""

    def __init__(self, on_send=lambda sent: None) -> None:
        self.sent: list[mido.Message] = []
        self._on_send = on_send

    def send(self, msg: mido.Message) -> None:
        self.sent.append(msg)
        self._on_send(self.sent)


def phrase(notes: list[Note], length: float = 4.0, label: str = "p") -> Phrase:
    return Phrase.build(notes, length, (4, 4), label, CH)


def assert_paired(sent: list[mido.Message]) -> None:
    """Every note-off releases a sounding note; nothing sounds at the end."""
    sounding: set[int] = set()
    for msg in sent:
        if msg.type == "note_on":
            assert msg.note not in sounding, f"{msg.note} struck while sounding"
            sounding.add(msg.note)
        elif msg.type == "note_off":
            assert msg.note in sounding, f"note-off for silent {msg.note}"
            sounding.remove(msg.note)
    assert not sounding


def test_note_events_order_and_overlaps():
    notes = [Note(36, 0.0, 1.0, 100), Note(42, 0.0, 0.5, 80), Note(36, 0.5, 0.25, 90),  # 36 re-struck
             Note(42, 0.5, 0.1, 60), Note(42, 0.5, 0.1, 70)]  # twice on one start: the louder stays
    events = [(beat, kind, msg.note, getattr(msg, "velocity", 0)) for beat, kind, _, msg in note_events(notes, CH)]
    assert events == [
        (0.0, ON, 36, 100), (0.0, ON, 42, 80),
        (0.5, OFF, 36, 0), (0.5, OFF, 42, 0),  # offs first: the same instant's new hits survive
        (0.5, ON, 36, 90), (0.5, ON, 42, 70),
        (0.6, OFF, 42, 0), (0.75, OFF, 36, 0),
    ]


class Listed:
    """A source handing out given phrases, then ending."""

    def __init__(self, *phrases: Phrase) -> None:
        self.phrases = list(phrases)
        self.current = phrases[0]
        self.change: Phrase | None = None

    def next_phrase(self) -> Phrase | None:
        if not self.phrases:
            return None
        self.current = self.phrases.pop(0)
        return self.current

    def again(self) -> Phrase:
        return self.current

    def take_change(self) -> Phrase | None:
        change, self.change = self.change, None
        return change


def drain(seq: Sequencer) -> list[tuple[float, str, int]]:
    out = []
    while seq.peek() is not None:
        beat, _, _, _, msg = seq.pop()
        out.append((beat, msg.type, msg.note))
    return out


def test_sequencer_fill_seek_and_splice():
    a = phrase([Note(36, 0.0, 0.5, 100), Note(38, 2.0, 0.5, 100)], label="a")
    b = phrase([Note(42, 1.0, 0.5, 100)], label="b")
    placed = []
    seq = Sequencer(Listed(a, b), on_place=lambda start, p: placed.append((start, p.label)))
    assert seq.fill(0.0) and seq.until == 4.0
    assert not seq.fill(3.9)
    seq.fill(4.0)
    assert placed == [(0.0, "a"), (4.0, "b")]
    seq.fill(8.0)
    assert seq.ended

    seq = Sequencer(Listed(a))
    seq.seek(9.0)  # in the third pass of `a`: only what starts at or after beat 9 remains
    assert drain(seq) == [(10.0, "note_on", 38), (10.5, "note_off", 38)]

    seq = Sequencer(Listed(a))
    seq.fill(0.0)
    seq.splice(b, 1.0)  # 36 already struck at 0 keeps its note-off; 38 at beat 2 is replaced
    assert drain(seq) == [(0.0, "note_on", 36), (0.5, "note_off", 36), (2.0, "note_on", 42), (2.5, "note_off", 42)]
    assert seq.until == 5.0


def test_player_pairs_notes_across_loops_and_stops_silent():
    # The long 36 still sounds when the loop strikes it again: it must be released first.
    looped = phrase([Note(36, 0.0, 3.0, 100), Note(42, 0.5, 0.25, 90)], length=2.0)
    out = Recorder()
    player = Player(out, FixedSource(looped, loop=True), FixedTempo(1200.0), channel=CH)
    thread = threading.Thread(target=player.run)
    thread.start()
    deadline = time.monotonic() + 5
    while sum(m.type == "note_on" for m in out.sent) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    player.stop()
    thread.join(5)
    assert sum(m.type == "note_on" for m in out.sent) >= 8
    assert_paired(out.sent)
    assert out.sent[-1] == mido.Message("control_change", channel=CH, control=123, value=0)


def test_player_ends_after_a_single_pass_and_splices_changes_at_a_bar():
    first = phrase([Note(36, b, 0.25, 100) for b in range(8)], length=8.0)
    second = phrase([Note(38, b, 0.25, 100) for b in range(8)], length=8.0)
    source = Listed(first)
    placed = []

    def change_on_beat_one(sent: list[mido.Message]) -> None:
        if sum(m.type == "note_on" for m in sent) == 2 and sent[-1].type == "note_on":
            source.change = second  # lands on the first bar line ahead: beat 4

    out = Recorder(change_on_beat_one)
    player = Player(out, source, FixedTempo(600.0), channel=CH, on_phrase=lambda s, p: placed.append(s))
    player.run()
    assert_paired(out.sent)
    hits = [m.note for m in out.sent if m.type == "note_on"]
    assert placed == [0.0, 4.0] and hits == [36] * 4 + [38] * 8


def test_a_generated_phrase_after_another_plays_its_one_once():
    """The model ends a phrase with the next one's kick or hats played early; the next phrase of
    live mode, a request of its own, has its one on time: a flam at the join (1-2 of 15 joins).
    A generated phrase takes the early hit of a drum it plays on its one away (an open hat
    before its closed one is the hi-hat struck twice); a crash into it stays, and a file's notes
    are as written."""
    def take(generated: bool) -> Phrase:
        notes = [Note(36, 0.0, 0.25, 100), Note(42, 0.02, 0.25, 80), Note(36, 3.958333, 0.04, 90),
                 Note(46, 3.916667, 0.08, 70), Note(49, 3.958333, 0.04, 110)]
        return Phrase.build(notes, 4.0, (4, 4), "p", CH, generated=generated)

    for generated, tail in ((True, [49]), (False, [46, 36, 49])):
        seq = Sequencer(Listed(take(generated), take(generated)))
        seq.fill(4.0)
        played = []
        while seq.peek() is not None:
            beat, kind, _, _, msg = seq.pop()
            played += [(round(beat, 3), msg.note)] if kind == ON else []
        assert [note for beat, note in played if 3.8 < beat < 4.0] == tail
        assert sorted(note for beat, note in played if 4.0 <= beat < 4.1) == [36, 42]


def test_after_a_stall_the_missed_notes_are_dropped_not_fired_at_once():
    """A send that blocks for 0.4 s (suspend, SIGSTOP, a paused VM, in small) leaves the next six
    16ths overdue: they are skipped, with their note-offs, and playing goes on in time."""
    sixteenths = phrase([Note(42, k / 4, 0.1, 80) for k in range(16)], length=4.0)
    stalled = []

    def stall_once(sent: list[mido.Message]) -> None:
        if not stalled and sent[-1].type == "note_on":
            stalled.append(time.perf_counter())
            time.sleep(0.4)

    out = Recorder(stall_once)
    times: list[float] = []
    original = out.send

    def send(msg: mido.Message) -> None:
        if msg.type == "note_on":
            times.append(time.perf_counter())
        original(msg)

    out.send = send
    Player(out, FixedSource(sixteenths, loop=False), FixedTempo(240.0), channel=CH, realtime=False).run()  # 16ths 62.5 ms
    assert_paired(out.sent)
    ons = sum(m.type == "note_on" for m in out.sent)
    assert 16 - 8 <= ons <= 16 - 5  # about 0.4 s of 16ths missed
    assert min(b - a for a, b in zip(times, times[1:])) > 0.02  # never a burst (126 note-ons in 50 ms, unfixed)
