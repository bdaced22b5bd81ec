"""Handler for Live's Clip: the notes that play, read for the daemon and written back.

Times on the wire are beats from the start of what plays (the loop of a looped clip, else the
part between the markers), so a clip whose loop starts at bar 3 is sent and written at bar 3.
"""

from __future__ import annotations

import Live

from shared.notes import Note

ALL_PITCHES = (0, 128)  # from_pitch, pitch_span


def region(clip: object) -> tuple[float, float]:
    """(start, end) in beats of what the clip plays."""
    if clip.looping:
        return clip.loop_start, clip.loop_end
    return clip.start_marker, clip.end_marker


def read_notes(clip: object) -> tuple[list[dict], float]:
    """The clip's audible notes as wire maps relative to its start, and its length in beats."""
    start, end = region(clip)
    wire = []
    for live_note in clip.get_notes_extended(*ALL_PITCHES, start, end - start):
        if live_note.mute:
            continue
        velocity = min(max(int(round(live_note.velocity)), 1), 127)
        wire.append(
            Note(live_note.pitch, live_note.start_time - start, live_note.duration, velocity,
                 live_note.probability, live_note.velocity_deviation).to_wire()  # fmt: skip
        )
    return wire, end - start


def remove_notes(clip: object, start: float, span: float) -> None:
    """Remove the notes starting in [start, start + span)."""
    clip.remove_notes_extended(*ALL_PITCHES, start, span)


def remove_audible_notes(clip: object, start: float, span: float) -> None:
    """Remove the notes starting in [start, start + span) that play: those `read_notes` sent,
    whose answer replaces them. Muted notes were not sent, so they stay as they are."""
    clip.remove_notes_by_id([n.note_id for n in clip.get_notes_extended(*ALL_PITCHES, start, span) if not n.mute])


def add_notes(clip: object, notes: list[Note], offset: float) -> None:
    """Add `notes`, their times shifted by `offset` beats."""
    clip.add_new_notes(tuple(_specification(note, offset) for note in notes))


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
