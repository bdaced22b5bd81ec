"""Standard MIDI files in and out (mido), in the units the rest of the code uses: beats.

Grooves are written as type-0 files on MIDI channel 10 (index 9), with tempo and time
signature, so any DAW drops them on a drum rack at the right speed. Reading accepts any
file and any channel (a user's clip may not be on channel 10) and reports what it found.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import mido
from mido.midifiles.meta import KeySignatureError

from shared.notes import Note, bar_beats, cut_short

log = logging.getLogger(__name__)

DRUM_CHANNEL = 9
MAX_DENOMINATOR = 128  # the file format allows 2^255; music stops well before
STRAY_SHARE = 0.1  # under this share of a file's notes, channel 10 is a stray beside the real part
MAX_BEATS = 8192  # 2,048 bars of 4/4, over an hour at 120 BPM: past it a file is not a groove
MAX_FILE_BYTES = 2 * 1024 * 1024  # GMD's longest take is 156 KB; mido took 20 s and 670 MB over a 3 MB file
TICKS_PER_BEAT = 480
MAX_TEMPO_US = 0xFFFFFF  # µs per beat: the file format's 24 bits


class MidiFileError(ValueError):
    """A file that is not a readable MIDI file, or holds no notes."""


@dataclass
class Groove:
    notes: list[Note]
    tempo: float  # BPM (the file's first tempo, 120 when it has none; later changes are warned of)
    meter: tuple[int, int]  # the first time signature, 4/4 when it has none
    length: float  # beats: whole bars covering the notes
    # (beat, BPM) where the file's tempo is not `tempo`, within the length: its later changes, and
    # MIDI's 120 from 0 in a file whose first tempo comes after its first notes
    tempo_changes: tuple[tuple[float, float], ...] = ()


def write(path: Path, notes: list[Note], tempo: float, meter: tuple[int, int], length: float | None = None,
          name: str = "MidiDrumiGen", tempo_changes: tuple[tuple[float, float], ...] = ()) -> None:
    """One drum track; the end-of-track sits at `length` beats so loops stay whole bars. A file
    read with `tempo_changes` (Groove's) is written with them: its notes keep their times.

    A hit that would still sound when the same piece is hit again is cut short there
    (shared.notes.cut_short): a roll must stay a roll.
    """
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order: offs before ons, message)
    end = round(length * TICKS_PER_BEAT) if length is not None else None
    for n in cut_short(notes):
        on = round(n.start * TICKS_PER_BEAT)
        off = max(on + 1, round((n.start + n.duration) * TICKS_PER_BEAT))
        if end is not None and n.start < length:  # inside the clip to the tick, released a tick before its end:
            on = max(0, min(on, end - 2))         # an end after every note marks the length (read)
            off = max(on + 1, min(off, end - 1))
        events.append((on, 1, mido.Message("note_on", channel=DRUM_CHANNEL, note=n.pitch, velocity=n.velocity)))
        events.append((off, 0, mido.Message("note_off", channel=DRUM_CHANNEL, note=n.pitch, velocity=0)))
    for beat, bpm in tempo_changes:  # before the notes of their tick (order -1)
        events.append((round(beat * TICKS_PER_BEAT), -1, mido.MetaMessage("set_tempo", tempo=_per_beat(bpm))))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=_per_beat(tempo), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = end if end is not None else now
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)


def _per_beat(bpm: float) -> int:
    """µs per beat of `bpm` (a file read at 3.576 BPM, rounded, stays writable)."""
    return min(mido.bpm2tempo(bpm), MAX_TEMPO_US)


def read(path: Path, drums_only: bool = True) -> Groove:
    """Every note-on as beats; raises MidiFileError on a bad file. With `drums_only`, a part on
    the drum channel (10) is read alone (a song's bass and chords are not drums) unless it is a
    stray few notes beside a part on another channel, as a clip exported from Live on channel 1
    may be; what is left out, or read together, is warned of."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise MidiFileError(f"{path} is {size / 2**20:.1f} MB; MidiDrumiGen reads MIDI files of up to "
                                f"{MAX_FILE_BYTES // 2**20} MB (a groove's is kilobytes)")
        mid = mido.MidiFile(path)
    except FileNotFoundError:
        raise MidiFileError(f"{path}: no such file") from None
    except MidiFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, IndexError, KeySignatureError) as err:
        raise MidiFileError(f"{path} is not a readable MIDI file ({type(err).__name__}: {err})" if str(err) else
                            f"{path} is not a readable MIDI file ({type(err).__name__})") from None
    if mid.type == 2:
        raise MidiFileError(f"{path} is a type-2 MIDI file (independent patterns); save it as type 0 or 1")
    tpb = mid.ticks_per_beat
    if tpb < 0:
        raise MidiFileError(f"{path} uses SMPTE time, which MidiDrumiGen does not read")
    if tpb == 0:
        raise MidiFileError(f"{path} has 0 ticks per beat")
    tempo, meter, changed, first_note = None, None, None, math.inf
    tempo_changes: list[tuple[int, float]] = []  # (tick, BPM) after the first
    open_notes: dict[tuple[int, int], tuple[int, int]] = {}
    notes: list[tuple[int, Note]] = []  # (channel, note)
    tick = 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        if msg.type == "set_tempo":
            if msg.tempo <= 0:
                raise MidiFileError(f"{path} sets a tempo of 0 µs per beat")
            bpm = round(mido.tempo2bpm(msg.tempo), 3)  # µs per beat is an integer
            late = tempo is None and first_note < tick and bpm != 120.0  # notes played at the default first
            if late:  # written back as played: MIDI's 120 until this tick
                tempo_changes.append((0, 120.0))
            if (tempo is not None or late) and bpm != (tempo_changes[-1][1] if tempo_changes else tempo):
                tempo_changes.append((tick, bpm))
            tempo = tempo or bpm
            changed = tick if changed is None and (bpm != tempo or late) else changed  # read at the first, warned of
        elif msg.type == "time_signature":
            if not (0 < msg.numerator and 0 < msg.denominator <= MAX_DENOMINATOR):
                den = msg.denominator if msg.denominator <= 1024 else f"2^{msg.denominator.bit_length() - 1}"
                raise MidiFileError(f"{path} has a time signature of {msg.numerator}/{den}")
            sig = (msg.numerator, msg.denominator)
            late = meter is None and first_note < tick and sig != (4, 4)  # notes played in 4/4 first
            meter = meter or ((4, 4) if late else sig)  # the bars already played keep their bar lines
            changed = tick if changed is None and sig != meter else changed
        elif msg.type == "note_on" and msg.velocity > 0:
            first_note = min(first_note, tick)
            _close(open_notes, notes, (msg.channel, msg.note), tick, tpb)
            open_notes[(msg.channel, msg.note)] = (tick, msg.velocity)
        elif msg.type in ("note_off", "note_on"):
            _close(open_notes, notes, (msg.channel, msg.note), tick, tpb)
    for key in list(open_notes):
        _close(open_notes, notes, key, tick, tpb)
    if not notes:
        raise MidiFileError(f"{path} holds no notes")
    if drums_only:
        notes = _drum_part(path, notes)
    else:
        notes = [note for _, note in notes]
    last = max(n.start for n in notes)
    if last > MAX_BEATS:
        raise MidiFileError(f"{path} has a note at beat {last:g}; MidiDrumiGen reads grooves of up to {MAX_BEATS} beats")
    meter = meter or (4, 4)
    if changed is not None:
        log.warning("%s changes tempo or meter at beat %g; it is read at its first, %g BPM in %d/%d",
                    path, changed / tpb, tempo or 120.0, *meter)
    bar = bar_beats(meter)
    bars = math.floor(last / bar + 1e-6) + 1
    # An end-of-track on a bar line after every note has ended marks a longer clip (trailing rests);
    # one that only follows a note held to it (a crash let ring, a note-off never sent) does not.
    end_bars = tick / tpb / bar
    after_the_notes = tick / tpb > max(n.start + n.duration for n in notes) + 1e-9
    if after_the_notes and abs(end_bars - round(end_bars)) < 1e-3 and round(end_bars) * bar <= MAX_BEATS:
        bars = max(bars, round(end_bars))
    length = bars * bar
    notes = sorted((n if n.start + n.duration <= length else replace(n, duration=length - n.start)
                    for n in notes), key=lambda n: (n.start, n.pitch))  # a note held to a far end of track ends with it
    return Groove(notes, tempo or 120.0, meter, length,
                  tuple((t / tpb, bpm) for t, bpm in tempo_changes if t / tpb < length))


def _drum_part(path: Path, notes: list[tuple[int, Note]]) -> list[Note]:
    counts = Counter(channel for channel, _ in notes)
    if len(counts) == 1:
        return [note for _, note in notes]
    if counts[DRUM_CHANNEL] >= STRAY_SHARE * len(notes):
        log.warning("%s: read its drum channel (10) alone, leaving out %s", path,
                    ", ".join(f"{n} notes on channel {c + 1}" for c, n in sorted(counts.items()) if c != DRUM_CHANNEL))
        return [note for channel, note in notes if channel == DRUM_CHANNEL]
    log.warning("%s: read channels %s together as one drum part", path, ", ".join(str(c + 1) for c in sorted(counts)))
    return [note for _, note in notes]


def _close(open_notes: dict, notes: list[tuple[int, Note]], key: tuple[int, int], tick: int, tpb: int) -> None:
    if key not in open_notes:
        return
    start, velocity = open_notes.pop(key)
    duration = max(tick - start, 1) / tpb
    notes.append((key[0], Note(key[1], start / tpb, duration, velocity)))
