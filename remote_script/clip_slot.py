"""Handler for Live's ClipSlot: which slot a request targets and how its answer is written.

A groove goes to the slot that was highlighted when the button was pressed, even if the user
has moved on by the time the daemon answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import Live

from . import clip as clips
from .song import highlighted_slot
from .wire import Note

NEW, REPLACE, MODIFY, EXTEND = "new", "replace", "modify", "extend"


class SlotProblem(Exception):
    """Why nothing can be written where the user points; the message is for the status bar."""


SLOT_DELETED = "the track or scene was deleted while the daemon worked — nothing written"
CLIP_GONE = "the clip was deleted or replaced while the daemon worked — nothing written"
CLIP_CHANGED = "another clip is in the slot now — nothing written over it"
LOOP_MOVED = "the clip's loop was moved or resized while the daemon worked — nothing written"
ELSEWHERE = "an Arrangement clip is in view — MidiDrumiGen writes Session View clips: switch to Session View"


def frozen(track: object) -> str:
    return f"“{track.name}” is frozen — unfreeze it to change its clips"


@dataclass(frozen=True)
class Plan:
    """How a pattern lands in its slot.

    NEW: a clip of `length` beats named `name` in `meter`, or, in an occupied slot, the clip's
    notes replaced, its loop set to `length` and its meter to `meter` (a Live 12 clip has its
    own, and the new groove is played in the song's). REPLACE: the notes of the clip's first `length`
    beats that play replaced (muted ones stay). MODIFY: the notes `note_ids` (those sent, in
    the order sent) take the times and dynamics of the pattern's first notes and keep everything
    else they carry; the pattern's other notes are added; an answer that does not match them
    note for note is written as REPLACE. EXTEND: the clip grows from `base` to `length` beats
    and the pattern's notes (all at or after `base`) fill the new part. REPLACE, MODIFY and
    EXTEND write only into `clip`, the clip they read when the button was pressed, and only while
    its loop (or markers) start at `start` and span what they read (`in_place`). NEW writes
    into `clip`, the clip the slot held when the button was pressed (None: it was empty), or into
    the slot if that clip is gone since, never over another clip the user put there meanwhile.
    Once written, `start` is where: the next variation goes there too, or nowhere.
    """

    mode: str
    length: float
    base: float = 0.0
    name: str | None = None
    clip: object | None = None
    note_ids: tuple[int, ...] = ()
    meter: tuple[int, int] | None = None  # NEW: the meter the groove was asked in
    start: float | None = None  # where the clip's loop began when its notes were read, then where it was written

    @classmethod
    def into(cls, mode: str, clip: object, length: float, **more: object) -> Plan:
        """A plan that writes into `clip` where its loop (or markers) start now, as its notes are read."""
        return cls(mode, length, clip=clip, start=clips.region(clip)[0], **more)


def target_slot(song: object, action: str, needs_clip: bool) -> object:
    """The highlighted Session slot if `action` can work there; otherwise SlotProblem says what
    to select; not while an Arrangement clip is in view (`in_view`)."""
    if not in_view(song):
        raise SlotProblem(ELSEWHERE)
    slot = highlighted_slot(song)
    if slot is None:
        raise SlotProblem("select a clip slot in a MIDI track first")
    track = slot.canonical_parent
    if not track.has_midi_input:
        raise SlotProblem(f"“{track.name}” is not a MIDI track — select a slot in a MIDI track")
    if track.is_frozen:  # Live: "no changes should be applied to the track's devices or clips"
        raise SlotProblem(frozen(track))
    if needs_clip and not slot.has_clip:
        raise SlotProblem(f"{action} needs a clip — select a clip, or press generate first")
    if slot.has_clip and not slot.clip.is_midi_clip:
        raise SlotProblem("that clip is not a MIDI clip")
    return slot


def in_view(song: object) -> bool:
    """No Arrangement clip is in the Detail View (one whose canonical parent is its Track, not
    a ClipSlot: "in an Arrangement or the Session, depending on the Track (Slot) it lives in").
    In Arrangement View a press changed a Session clip the user could not see."""
    shown = song.view.detail_clip
    return not alive(shown) or isinstance(shown.canonical_parent, Live.ClipSlot.ClipSlot)


def alive(obj: object) -> bool:
    """Whether a Live object still exists. Live's handle on an object the user deleted compares
    equal to None (Ableton's own `liveobj_valid`), so `obj is not None` would call it alive."""
    return obj != None  # noqa: E711


def in_place(clip: object, plan: Plan) -> bool:
    """The clip's loop (or markers) starts where `plan` read or wrote it and is as long as an
    answer left it, or, after a continuation, as long as it was before it (its new bars undone).
    An answer written after the loop moved went to the notes under the new loop (a fill of bars
    1-4 over the producer's bars 5-8), and cycling a continuation's variations once stretched a
    clip the producer had doubled back to its length."""
    start, end = clips.region(clip)
    lengths = (plan.length, plan.base) if plan.mode == EXTEND else (plan.length,)
    return ((plan.start is None or round(start, 6) == round(plan.start, 6))
            and round(end - start, 6) in {round(length, 6) for length in lengths})  # a loop 0.1-4.1 is 3.9999999999999996


def check_still_there(slot: object, plan: Plan) -> None:
    """SlotProblem when what `plan` writes into is gone: its track or scene, or the clip it changes.
    Asked before the undo step opens, so a refusal leaves no empty one behind."""
    if not alive(slot):
        raise SlotProblem(SLOT_DELETED)
    if slot.canonical_parent.is_frozen:  # frozen while the daemon worked, or before a variation press
        raise SlotProblem(frozen(slot.canonical_parent))
    if plan.mode in (REPLACE, MODIFY, EXTEND) and not (slot.has_clip and slot.clip == plan.clip):
        raise SlotProblem(CLIP_GONE)
    if plan.mode in (REPLACE, MODIFY, EXTEND) and not in_place(slot.clip, plan):
        raise SlotProblem(LOOP_MOVED)
    if plan.mode == NEW and slot.has_clip and slot.clip != plan.clip:
        raise SlotProblem(CLIP_CHANGED)


def write(slot: object, plan: Plan, notes: list[Note]) -> None:
    """Write `notes` into `slot` following `plan`, once check_still_there passed (the caller wraps
    this in one undo step). What can be refused (the markers) is settled before any note is removed."""
    if plan.mode == EXTEND:
        clip = slot.clip
        start = clips.region(clip)[0]
        clips.set_end(clip, start + plan.length)
        clips.remove_notes(clip, start + plan.base, plan.length - plan.base)
        clips.add_notes(clip, notes, start)
        return
    if not slot.has_clip:
        clip = slot.create_clip(plan.length)
        clips.set_meter(clip, plan.meter)  # the song's may have changed since the press
        clips.add_notes(clip, notes, 0.0)
    elif plan.mode == NEW:
        clip = slot.clip
        start, end = clips.region(clip)
        first = min(start, clip.start_marker)  # a looped clip plays from its start marker before its loop
        clips.set_end(clip, start + plan.length)
        clips.set_meter(clip, plan.meter)
        if clip.start_marker != start:  # the new groove starts on its one: not after a lead-in, nor mid-groove
            clip.start_marker = start
        clips.remove_notes(clip, first, max(plan.length, end - start) + start - first)
        clips.add_notes(clip, notes, start)
    else:
        clip = slot.clip
        start = clips.region(clip)[0]
        if not (plan.mode == MODIFY and clips.modify_notes(clip, plan.note_ids, notes, start, plan.length)):
            clips.replace_notes(clip, start, plan.length, notes)
    if plan.name is not None:
        clip.name = plan.name
