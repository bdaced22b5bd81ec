"""Handler for Live's Clip: the notes that play, read for the daemon and written back.

Times on the wire are beats from the start of what plays (the loop of a looped clip, else the
part between the markers), so a clip whose loop starts at bar 3 is sent and written at bar 3.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import Live

from .wire import Note, cut_short

ALL_PITCHES = (0, 128)  # from_pitch, pitch_span


def region(clip: object) -> tuple[float, float]:
    """(start, end) in beats of what the clip plays."""
    if clip.looping:
        return clip.loop_start, clip.loop_end
    return clip.start_marker, clip.end_marker


def read_notes(clip: object) -> tuple[list[dict], float, tuple[int, ...]]:
    """The clip's audible notes as wire maps relative to its start, its length in beats, and the
    notes' ids. The notes come in the order the daemon reads a clip (by start, then pitch), so
    an answer that keeps them in order (humanize) lines up with the ids."""
    start, end = region(clip)
    length = round(end - start, 6)  # as the daemon keeps it: a note at or after it is not read there
    read = []
    for live_note in clip.get_notes_extended(*ALL_PITCHES, start, end - start):
        # Live's doc leaves open whether a note begun before `start` is in the range: it is not ours.
        if live_note.mute or not 0 <= live_note.start_time - start < length:
            continue
        read.append((_as_sent(live_note, start), live_note.note_id))
    read.sort(key=lambda pair: (pair[0].start, pair[0].pitch))
    return [note.to_wire() for note, _ in read], end - start, tuple(note_id for _, note_id in read)


def remove_notes(clip: object, start: float, span: float) -> None:
    """Remove the notes starting in [start, start + span) (remove_notes_extended's documented range)."""
    clip.remove_notes_extended(*ALL_PITCHES, start, span)


def remove_audible_notes(clip: object, start: float, span: float, keep: tuple[int, ...] = ()) -> None:
    """Remove the notes starting in [start, start + span) that play, but those in `keep`: what
    `read_notes` sent, whose answer replaces them. Muted notes were not sent, so they stay."""
    kept = set(keep)
    clip.remove_notes_by_id([n.note_id for n in clip.get_notes_extended(*ALL_PITCHES, start, span)
                             if not n.mute and n.note_id not in kept and n.start_time >= start])


def replace_notes(clip: object, start: float, span: float, notes: list[Note]) -> None:
    """The notes that play in [start, start + span) become `notes` (times from `start`), changing
    only what differs: a note the answer has exactly as the clip has it (fill's other bars) stays
    in the clip untouched, with its id and what else it carries (release velocity, per-note
    expression), which removing and adding it would lose. Muted notes were not sent, so they stay."""
    wanted = Counter(_key(note) for note in notes)
    kept: Counter = Counter()
    doomed = []
    for live_note in clip.get_notes_extended(*ALL_PITCHES, start, span):
        if live_note.mute or live_note.start_time < start:
            continue
        key = _key(_as_sent(live_note, start))
        if kept[key] < wanted[key]:
            kept[key] += 1
        else:
            doomed.append(live_note.note_id)
    clip.remove_notes_by_id(doomed)
    new = []
    for note in notes:
        if kept[_key(note)]:
            kept[_key(note)] -= 1
        else:
            new.append(note)
    add_notes(clip, new, start)


def _as_sent(live_note: object, start: float) -> Note:
    """A Live note as the daemon is sent it: its time from `start`, its velocity a whole 1-127."""
    velocity = min(max(int(round(live_note.velocity)), 1), 127)
    return Note(live_note.pitch, live_note.start_time - start, live_note.duration, velocity, live_note.probability,
                live_note.velocity_deviation)


def _key(note: Note) -> tuple:
    return (note.pitch, round(note.start, 6), round(note.duration, 6), note.velocity, round(note.probability, 6),
            round(note.velocity_deviation, 6))


def modify_notes(clip: object, ids: tuple[int, ...], notes: list[Note], start: float, span: float) -> bool:
    """Give the notes `ids` the times and dynamics of `notes[:len(ids)]`, the answer to them in
    the order they were sent, and add the rest (ghost notes), the way Live wants existing notes
    changed: apply_note_modifications keeps what each note carries besides (release velocity,
    per-note expression), which removing and adding them would lose. Each keeps its length, but
    ends with the clip and by the next hit of its pitch (moved 16ths of a 16th's length overlapped
    in 16 of 32 hats: a note-off cut the next hit short). The other notes that play in
    [start, start + span) go, as in a replacement (ghost notes of an earlier answer, notes added
    while the daemon worked). False, with nothing changed, unless every note is still in the clip
    and the answer matches them pitch for pitch."""
    present = {n.note_id for n in clip.get_notes_extended(*ALL_PITCHES, start, span)}
    if len(notes) < len(ids) or not present.issuperset(ids):
        return False
    answer = dict(zip(ids, notes))
    live = clip.get_notes_by_id(ids)
    if any(answer[n.note_id].pitch != n.pitch for n in live):
        return False
    remove_audible_notes(clip, start, span, keep=ids)
    kept = [replace(answer[n.note_id], duration=min(n.duration, span - answer[n.note_id].start)) for n in live]
    placed = cut_short(kept + notes[len(ids):])
    for live_note, new in zip(live, placed):
        live_note.start_time = start + new.start
        live_note.duration = new.duration
        if new.velocity != round(live_note.velocity):  # a velocity kept as played stays exactly as it was
            live_note.velocity = float(new.velocity)
        live_note.probability = new.probability
        live_note.velocity_deviation = new.velocity_deviation
    clip.apply_note_modifications(live)
    add_notes(clip, placed[len(live):], start)
    return True


def add_notes(clip: object, notes: list[Note], offset: float) -> None:
    """Add `notes`, their times shifted by `offset` beats."""
    clip.add_new_notes(tuple(_specification(note, offset) for note in notes))


def set_meter(clip: object, meter: tuple[int, int] | None) -> None:
    """Give the clip this meter (None: leave it as it is)."""
    if meter is None or (clip.signature_numerator, clip.signature_denominator) == meter:
        return
    clip.signature_numerator, clip.signature_denominator = meter


def set_end(clip: object, end: float) -> None:
    """Move the end of what plays; a looped clip's end marker is kept at or past its loop end,
    and a start marker the shorter loop leaves behind comes back to the loop's start."""
    if not clip.looping:
        clip.end_marker = end
    elif end >= clip.loop_end:
        if clip.end_marker < end:
            clip.end_marker = end
        clip.loop_end = end
    else:
        if clip.start_marker >= end:  # Live refuses an end marker before the start marker
            clip.start_marker = clip.loop_start
        clip.loop_end = end
        clip.end_marker = end


def _specification(note: Note, offset: float) -> object:
    return Live.Clip.MidiNoteSpecification(
        pitch=note.pitch,
        start_time=note.start + offset,
        duration=note.duration,
        velocity=float(note.velocity),
        probability=note.probability,
        velocity_deviation=note.velocity_deviation,
    )
