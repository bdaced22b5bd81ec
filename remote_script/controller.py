"""Button presses become requests; replies become notes in clips.

Nothing here blocks Live: `press` reads the song and queues a request, `tick` (Live's display
tick) polls the client with timeout 0 and writes a finished groove inside one undo step. One
request is in flight at a time: pressing another request button supersedes it, and deleting
the track, scene or clip it writes into abandons it (either way the client forgets it, so it is
neither waited for nor resent, a late reply is dropped by its id, and the daemon is told to stop
working on it); pressing the same one again with nothing changed only says that the script is
still working.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import clip as clips
from .clip_slot import (CLIP_GONE, EXTEND, MODIFY, NEW, REPLACE, SLOT_DELETED, Plan, SlotProblem, alive,
                        check_still_there, in_place, in_view, target_slot, write)
from .messages import bars_text, error_status, say
from .params import FALLBACK_STYLES, MIX_SHARE, STRENGTH_STEPS, Params
from .settings import Settings
from .song import Timing, highlighted_slot, read_timing, undo_step
from .wire import (E_MALFORMED, MAX_CLIP_NOTES, OP_CONTINUE, OP_DRUMIFY, OP_FILL, OP_GENERATE, OP_HUMANIZE, OP_INFO,
                   OP_STYLES, OP_VARIATION, PROTOCOL_VERSION, VARIATIONS_RANGE, DaemonClient, Note, ProtocolError, Reply,
                   unpack_notes)


MESSAGE_HOLD_S = 2.0  # a control's message, shown while a request waits, stays this long before the ticker
TEMPO_DRIFT_BPM = 1.0  # tempos closer than this ask for the same groove (_same_request)


@dataclass
class Job:
    """A request in flight, and where its answer goes."""

    action: str
    op: str
    request_id: int
    slot: object
    plan: Plan
    doing: str  # "generating funk 4 bars 96 BPM"
    done: str  # "funk 4 bars 96 BPM"
    fields: dict
    started: float
    seconds_shown: int = 0


def _same_request(asked: dict, now: dict) -> bool:
    """The same fields, the tempo within TEMPO_DRIFT_BPM: pressed again while the tempo drifted
    (automation, Link, Tempo Follower), the request in flight was abandoned and asked again."""
    def rest(fields: dict) -> dict:
        return {name: value for name, value in fields.items() if name != "tempo"}

    return rest(asked) == rest(now) and abs(asked["tempo"] - now["tempo"]) < TEMPO_DRIFT_BPM


@dataclass
class Result:
    """The patterns of the last answered request, and which of them is in the clip."""

    slot: object
    plan: Plan
    done: str
    patterns: list
    index: int = 0
    sent: dict | None = None  # the request's fields: for humanize, the clip as it was before


@dataclass
class Humanized:
    """What humanize wrote into a clip, and the notes it was sent: pressed again, humanize plays those afresh."""

    clip: object
    sent: list
    note_ids: tuple
    written: list


HUMANIZED_KEPT = 16  # clips whose last humanize is remembered


class Controller:
    """Owns the request in flight and the last result; everything it does runs on Live's thread."""

    def __init__(
        self,
        song: object,
        client: DaemonClient,
        settings: Settings,
        show: Callable[[str], None],
        log: Callable[[str], None],
        light: Callable[[str, bool], None],
    ) -> None:
        self._song = song
        self._client = client
        self._settings = settings
        self._show = show
        self._log = log
        self._light = light
        self.params = Params(FALLBACK_STYLES, settings.style, settings.bars, settings.temperature,
                             density=settings.density, complexity=settings.complexity, focus=settings.focus,
                             guidance=settings.guidance, strength=settings.strength)
        self._job: Job | None = None
        self._ticker_quiet_until = 0.0
        self._result: Result | None = None
        self._humanized: list[Humanized] = []
        self._styles_known = False
        self._lookups: dict[int, Callable[[Reply], None]] = {}
        self.handlers: dict[str, Callable[[], None]] = {
            "generate": self.generate,
            "next_variation": lambda: self._step_variation("next_variation", +1),
            "previous_variation": lambda: self._step_variation("previous_variation", -1),
            "continue": self.continue_clip,
            "fill": self.fill,
            "humanize": self.humanize,
            "drumify": self.drumify,
            "next_style": lambda: self._step_style(+1),
            "previous_style": lambda: self._step_style(-1),
            "bars_up": lambda: self._step_bars(+1),
            "bars_down": lambda: self._step_bars(-1),
            "temperature_up": lambda: self._step_temperature(+1),
            "temperature_down": lambda: self._step_temperature(-1),
            "density_up": lambda: self._step_density(+1),
            "density_down": lambda: self._step_density(-1),
            "complexity_up": lambda: self._step_complexity(+1),
            "complexity_down": lambda: self._step_complexity(-1),
            "style_mix": self._step_mix,
            "focus": self._step_focus,
            "guidance": self._step_guidance,
            "strength": self._step_strength,
        }
        self._ask_daemon()

    # Entry points: Live's MIDI input and display tick.

    def press(self, action: str) -> None:
        job = self._job
        try:
            self.handlers[action]()
        except SlotProblem as problem:
            self._show(say(str(problem)))
        if job is not None and self._job is job:  # said while a request waits: the ticker lets it be read
            self._ticker_quiet_until = time.monotonic() + MESSAGE_HOLD_S

    @property
    def busy_action(self) -> str | None:
        """The action whose request is in flight (its button lit busy), if any."""
        return None if self._job is None else self._job.action

    def tick(self) -> None:
        try:
            replies = self._client.poll(0.0)
        except Exception:  # raised on (the surface logs it): the press in flight ends, unlit, not waited for forever
            job, self._job = self._job, None
            if job is not None:
                self._light(job.action, False)
                with contextlib.suppress(Exception):  # nor resent, nor worked on for nobody, if the client can still say so
                    self._client.forget(job.request_id)
            raise
        for reply in replies:
            try:
                self._take(reply)
            except Exception:  # Live refusing a write in its own way: the other replies still count
                self._log(f"handling the reply to request {reply.id} failed:\n{traceback.format_exc()}")
                self._show(say("something went wrong — details in Live's Log.txt"))
        job = self._job
        if job is None:
            return
        gone = self._gone(job)
        if gone is not None:  # what its answer was for was deleted: stop waiting now
            self._job = None
            self._abandon(job, gone)
            self._show(say(gone))
        else:
            self._report_wait(job)

    def _take(self, reply: Reply) -> None:
        lookup = self._lookups.pop(reply.id, None)
        if lookup is not None:
            lookup(reply)
        elif self._job is not None and reply.id == self._job.request_id:
            self._finish(reply)
        else:
            self._log(f"dropped the reply to request {reply.id}: it was no longer waited for")

    def close(self) -> None:
        self._client.close()

    # Request actions.

    def generate(self) -> None:
        slot = target_slot(self._song, "generate", needs_clip=False)
        timing = read_timing(self._song, slot)
        bars = self.params.bars
        name = f"{self.params.style_label()} {bars_text(bars)} {timing.label()}"
        fields = {**self._common(timing), **self._shape(), "bars": bars, "variations": self._variations()}
        plan = Plan(NEW, bars * timing.beats_per_bar, name=name, meter=(timing.numerator, timing.denominator),
                    clip=slot.clip if slot.has_clip else None)
        self._request("generate", OP_GENERATE, slot, plan, f"generating {name}", name, fields)

    def continue_clip(self) -> None:
        slot, timing, fields, _ = self._clip_context("continue")
        bars, length = self.params.bars, fields["length"]
        fields.update(self._shape(), bars=bars, variations=self._variations())
        plan = Plan.into(EXTEND, slot.clip, length + bars * timing.beats_per_bar, base=length)
        added = bars_text(bars)
        self._request("continue", OP_CONTINUE, slot, plan, f"adding {added}", f"{added} added", fields)

    def fill(self) -> None:
        slot, _, fields, _ = self._clip_context("fill")
        fields.update(self._shape())
        if self._settings.fill_every is not None:
            fields["every"] = self._settings.fill_every
        plan = Plan.into(REPLACE, slot.clip, fields["length"])
        self._request("fill", OP_FILL, slot, plan, "writing a fill", "fill written", fields)

    def humanize(self) -> None:
        slot, _, fields, ids = self._clip_context("humanize")
        if not fields["notes"]:  # the daemon would answer with nothing, and the status say "humanized"
            self._show(say("nothing to humanize — the clip has no notes that play"))
            return
        before = self._before_humanize(slot, fields["notes"])
        if before is not None:  # pressed again: another take of the clip as it was
            fields["notes"], ids = before
        amount = self._settings.humanize_amount
        fields.update(amount=amount, ghost_notes=self._settings.humanize_ghost_notes,
                      chance=self._settings.humanize_chance)
        done = f"humanized ({amount:.0%})"
        plan = Plan.into(MODIFY, slot.clip, fields["length"], note_ids=ids)
        self._request("humanize", OP_HUMANIZE, slot, plan, "humanizing", done, fields)

    def drumify(self) -> None:
        slot, _, fields, _ = self._clip_context("drumify")
        fields.update(self._shape())
        plan = Plan.into(REPLACE, slot.clip, fields["length"])
        self._request("drumify", OP_DRUMIFY, slot, plan, "drumifying", "drumified", fields)

    def _step_variation(self, action: str, direction: int) -> None:
        """Cycle the last answer's patterns in its slot; for any other clip, ask for variations.
        Not while the slot waits for an answer: that answer is worked from the notes the clip had
        when it was asked for, and would overwrite the variation picked meanwhile."""
        slot, result, job = highlighted_slot(self._song), self._result, self._job
        if job is not None and slot is not None and slot == job.slot:
            self._show(say(f"still {job.doing}…"))
            return
        if (result is not None and slot is not None and slot == result.slot and len(result.patterns) > 1
                and slot.has_clip and slot.clip == result.plan.clip  # still the clip the answer went into,
                and in_place(slot.clip, result.plan)  # where and as long as it left it,
                and in_view(self._song)):  # with no Arrangement clip in view (else target_slot says why not)
            result.index = (result.index + direction) % len(result.patterns)
            self._write_current()
            return
        slot, _, fields, _ = self._clip_context("variation")
        fields.update(self._shape(), variations=self._variations())
        plan = Plan.into(REPLACE, slot.clip, fields["length"])
        self._request(action, OP_VARIATION, slot, plan, "making variations of the clip", "new variation", fields)

    # Local actions: they change what the next request asks for.

    def _step_style(self, direction: int) -> None:
        style = self.params.step_style(direction)
        styles = self.params.styles
        self._show(say(f"style {style} ({styles.index(style) + 1} of {len(styles)})"))
        self._refresh_styles()

    def _refresh_styles(self) -> None:
        """Ask the daemon's styles again: one learned (or deleted) while Live runs is among the
        next presses' (it was asked for once, at start, and a new style never came)."""
        if self._on_styles not in self._lookups.values():
            self._lookups[self._client.send(OP_STYLES)] = self._on_styles

    def _step_mix(self) -> None:
        partner = self.params.step_mix()
        if partner is None:
            self._show(say(f"style mix off — pure {self.params.style}"))
        else:
            self._show(say(f"mixing {self.params.style} with {MIX_SHARE:.0%} {partner}"))

    def _step_bars(self, direction: int) -> None:
        self._show(say(f"{bars_text(self.params.step_bars(direction))} — press generate"))

    def _step_temperature(self, direction: int) -> None:
        before = self.params.temperature
        value = self.params.step_temperature(direction)
        feel = "wilder" if value > 1.05 else "tighter" if value < 0.95 else "balanced"
        end = " — as far as the button goes" if value == before else ""  # cooler, grooves thin out
        self._show(say(f"temperature {value:.2f} ({feel}){end}"))

    def _step_density(self, direction: int) -> None:
        self._show(say(_level_text("density", self.params.step_density(direction))))

    def _step_complexity(self, direction: int) -> None:
        self._show(say(_level_text("complexity", self.params.step_complexity(direction))))

    def _step_focus(self) -> None:
        focus = self.params.step_focus()
        self._show(say("focus off: one take per groove" if focus == 1 else
                       f"focus {focus}: the most typical of {focus} takes, {self._variations()} variations"))

    def _step_guidance(self) -> None:
        guidance = self.params.step_guidance()
        self._show(say("guidance off" if guidance == 1.0 else
                       f"guidance {guidance:g}: follows the style harder, each groove takes about 1.3x as long"))

    def _step_strength(self) -> None:
        strength = self.params.step_strength()
        self._show(say("strength: each style's own (1.5 for a genre)" if strength is None else
                       f"strength {strength:g}: {STRENGTH_STEPS[strength]}"))

    # Requests and replies.

    def _common(self, timing: Timing) -> dict:
        # packed: each pattern's notes come as one bin, so a big reply decodes within a tick
        return {"style": self.params.wire_style(), "kit": self._settings.kit, "packed": True, **timing.wire()}

    def _shape(self) -> dict:
        shape = {"temperature": self.params.temperature, "top_p": self._settings.top_p, "focus": self.params.focus,
                 "guidance": self.params.guidance}
        left_to_the_daemon = {"density": self.params.density, "complexity": self.params.complexity,
                              "strength": self.params.strength}  # None: not sent, the daemon chooses
        return shape | {name: value for name, value in left_to_the_daemon.items() if value is not None}

    def _variations(self) -> int:
        """The variations setting, fewer where focus makes each one several takes (the daemon's limit)."""
        return min(self._settings.variations, VARIATIONS_RANGE[1] // self.params.focus)

    def _clip_context(self, action: str) -> tuple[object, Timing, dict, tuple[int, ...]]:
        """The target slot, the timing (the scene's or song's tempo, the clip's meter), the request fields
        describing its clip, and the ids of the notes sent, in the order sent."""
        slot = target_slot(self._song, action, needs_clip=True)
        timing = read_timing(self._song, slot, slot.clip)  # a 3/4 clip in a 4/4 set is read and played in 3/4
        notes, length, ids = clips.read_notes(slot.clip)
        if len(notes) > MAX_CLIP_NOTES:  # refused here, not packed on Live's thread to be refused there
            raise SlotProblem(f"this clip plays {len(notes)} notes; MidiDrumiGen takes at most {MAX_CLIP_NOTES}")
        return slot, timing, {**self._common(timing), "notes": notes, "length": length}, ids

    def _request(self, action: str, op: str, slot: object, plan: Plan, doing: str, done: str, fields: dict) -> None:
        job = self._job
        if job is not None and job.op == op and job.slot == slot and _same_request(job.fields, fields):
            self._show(say(f"still {job.doing}…"))
            return
        try:
            request_id = self._client.send(op, **fields)
        except ValueError as error:  # a clip too large for one message
            self._show(say(f"cannot send this clip: {error}"))
            return
        if job is not None:
            self._abandon(job, f"superseded by request {request_id} ({op})")
        self._job = Job(action, op, request_id, slot, plan, doing, done, fields, time.monotonic())
        self._light(action, True)
        self._show(say(f"{doing}…"))

    @staticmethod
    def _gone(job: Job) -> str | None:
        """Why the answer to `job` can no longer be written, when the user deleted where it goes."""
        if not alive(job.slot):
            return SLOT_DELETED
        if job.plan.mode != NEW and job.plan.clip is not None and not alive(job.plan.clip):  # the clip an action read
            return CLIP_GONE
        return None

    def _abandon(self, job: Job, why: str) -> None:
        """Stop waiting for `job`: the client neither waits for nor resends it, the daemon is told
        to drop it, and its late answer is dropped by its id."""
        self._client.forget(job.request_id)
        self._log(f"request {job.request_id} ({job.op}) abandoned: {why}")
        self._light(job.action, False)

    def _report_wait(self, job: Job) -> None:
        """Once a second, say that the script is still waiting (and on what)."""
        now = time.monotonic()
        seconds = int(now - job.started)
        if seconds >= 1 and seconds != job.seconds_shown and now >= self._ticker_quiet_until:
            job.seconds_shown = seconds
            doing = job.doing if self._client.connected else "waiting for the daemon"
            self._show(say(f"{doing}… {seconds} s"))

    def _finish(self, reply: Reply) -> None:
        job, self._job = self._job, None
        self._light(job.action, False)
        if not reply.ok:
            self._log(f"{job.op} request {reply.id} failed: {reply.error_code}: {reply.error_message}")
            self._show(error_status(job.op, reply.error_code, reply.error_message))
            return
        patterns = reply.data.get("patterns")
        if not isinstance(patterns, list) or not patterns:
            self._log(f"{job.op} reply {reply.id} holds no patterns (fields: {sorted(reply.data)})")
            self._show(say("the daemon sent no groove — try again"))
            return
        if not self._styles_known:
            self._ask_daemon()
        self._result = Result(job.slot, job.plan, job.done, patterns, sent=job.fields)
        self._write_current()

    def _write_current(self) -> None:
        """Write the current pattern of the last result into its slot, as one undo step."""
        result = self._result
        try:
            notes = self._notes_of(result.patterns[result.index], result.plan)
        except ProtocolError as error:
            self._log(f"pattern {result.index + 1} is unusable: {error.message}")
            self._show(say("the daemon sent notes Live cannot use — details in Live's Log.txt"))
            return
        try:
            check_still_there(result.slot, result.plan)
            with undo_step(self._song):
                write(result.slot, result.plan, notes)
            clip = result.slot.clip  # a new clip: the one the next variation goes into, where it went
            result.plan = replace(result.plan, clip=clip, start=clips.region(clip)[0])
            if result.plan.mode == MODIFY:
                self._remember_humanized(result, notes)
        except SlotProblem as problem:  # its clip, track or scene is gone: no variation of it either
            self._result = None
            self._show(say(str(problem)))
            return
        except RuntimeError as error:  # Live refused a change, e.g. on a frozen track
            self._log(f"writing the clip failed: {error!r}")
            self._show(say(f"Live refused to write the clip ({error})"))
            return
        count = len(result.patterns)
        which = f" — variation {result.index + 1} of {count}" if count > 1 else ""
        self._log(f"wrote {len(notes)} notes: {result.done}{which}")
        self._show(say(result.done + which))

    def _before_humanize(self, slot: object, notes: list[dict]) -> tuple[list, tuple[int, ...]] | None:
        """The notes the clip's last humanize was sent, and their ids, while the clip holds what
        it wrote: humanizing the humanized clip again read its flams, drags and triplets as played
        16ths and pinned them there, piled up ghost notes and pushed amount 0.3 towards 1."""
        for done in reversed(self._humanized):
            if done.clip == slot.clip:
                return (done.sent, done.note_ids) if _same_notes(notes, done.written) else None  # edited, or undone
        return None

    def _remember_humanized(self, result: Result, notes: list[Note]) -> None:
        clip = result.slot.clip
        done = Humanized(clip, result.sent["notes"], result.plan.note_ids, [note.to_wire() for note in notes])
        self._humanized = [h for h in self._humanized if h.clip != clip][-(HUMANIZED_KEPT - 1):] + [done]

    def _notes_of(self, pattern: object, plan: Plan) -> list[Note]:
        """The pattern's notes, unpacked only now that it is written (the reply stays bytes)."""
        if isinstance(pattern, dict) and "packed" in pattern:
            notes = unpack_notes(pattern["packed"])
        elif isinstance(pattern, dict) and isinstance(pattern.get("notes"), list):  # a daemon before `packed`
            notes = [Note.from_wire(wire) for wire in pattern["notes"]]
        else:
            raise ProtocolError(E_MALFORMED, "a pattern is not a map {seed, packed} or {seed, notes: [...]}")
        outside = [note for note in notes if not 0 <= note.start < plan.length]
        if outside:  # refused before the clip is touched: write() removes notes before it adds these
            raise ProtocolError(E_MALFORMED, f"{len(outside)} notes start outside the clip's {plan.length:g} beats")
        if plan.mode == EXTEND:  # `continue` answers with the new bars only
            kept = [note for note in notes if note.start >= plan.base]
            if len(kept) < len(notes):
                self._log(f"ignored {len(notes) - len(kept)} notes that start before the clip's old end")
            notes = kept
        return notes

    # What the daemon is: asked at start-up, and again after a success if that failed.

    def _ask_daemon(self) -> None:
        self._lookups[self._client.send(OP_INFO)] = self._on_info
        self._lookups[self._client.send(OP_STYLES)] = self._on_styles

    def _on_info(self, reply: Reply) -> None:
        if not reply.ok:
            self._log(f"info request failed: {reply.error_code}: {reply.error_message}")
            self._show(error_status("info", reply.error_code, reply.error_message))
            return
        data, protocol = reply.data, reply.data.get("protocol")
        model, device = data.get("model"), data.get("device")
        self._log(f"daemon {data.get('version')} (protocol {protocol}), model {model} on {device}")
        if protocol != PROTOCOL_VERSION:
            mismatch = f"the daemon speaks protocol {protocol}, this script {PROTOCOL_VERSION}"
            self._show(say(f"{mismatch} — update MidiDrumiGen"))

    def _on_styles(self, reply: Reply) -> None:
        styles = reply.data.get("styles") if reply.ok else None
        if isinstance(styles, list) and styles and all(isinstance(s, str) for s in styles):
            if tuple(styles) != self.params.styles:
                self._log(f"styles: {', '.join(styles)}")
            self.params.set_styles(styles)
            self._styles_known = True
        else:
            self._log(f"styles request failed: {reply.error_code}: {reply.error_message}")


def _same_notes(a: list[dict], b: list[dict]) -> bool:
    """The same hits (pitch, time, dynamics; a note's length is Live's to keep) as Live reads them back."""
    def key(wire: dict) -> tuple:
        return (wire["pitch"], round(wire["start"], 4), wire["velocity"], round(wire.get("probability", 1.0), 4),
                round(wire.get("velocity_deviation", 0.0), 4))
    return sorted(map(key, a)) == sorted(map(key, b))


def _level_text(name: str, level: float | None) -> str:
    return f"{name}: the model chooses" if level is None else f"{name} {level:.0%}"
