"""Styles: the genres, the GMD drummers, built-in presets, and styles learned from a user's grooves.

The model reads a style at the genre slot of its prefix, and `DrumTransformer.forward(prefix_mix=...)`
puts `weights @ token embeddings` there, so every style is a weight vector over the vocabulary:
a genre is a one-hot, a preset a blend of genres, `drummerN` the `any` genre with drummer N in
the drummer slot (a prefix override).

A learned style is found like textual inversion: the model stays frozen and gradient descent
moves the genre-slot vector until the model predicts the user's grooves better. The vector may
only use the genre and drummer tokens (30 weights), because then a style reads like a recipe
("0.5 soul, 0.3 drummer7, -0.4 rock"), stays near embeddings the model was trained on, and has
too few degrees of freedom for 3-20 grooves to overfit; an L2 pull towards the starting genre
keeps it close. Learning starts at the genre closest to the grooves and, when one GMD drummer
predicts them better than `any`, plays with that drummer. A groove template (where each piece
lands around each 16th, and how hard) is measured too and stored. docs/styles.md has the
folder, the file format, what each preset is made of and the measurements.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn import functional as F

from daemon import checkpoint, kit
from daemon.anchors import Anchors, OnTheBeat
from daemon.groove_template import Feel, Groove, GrooveTemplate
from daemon.data import bar_stats, levels_of
from daemon.model import DrumTransformer
from daemon.vocab import DRUMMERS, GENRES, LEVELS, POSITIONS_PER_BEAT, SLOTS, TOKENIZER_CONFIG, Conditions, Vocabulary
from shared.notes import Note, bar_beats
from shared.protocol import LEARN_STEPS_RANGE, brief

FORMAT = "mididrumigen-style"
FORMAT_VERSION = 1
FOLDER_ENV = "MIDIDRUMIGEN_STYLES"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
DRUM_PITCHES = range(TOKENIZER_CONFIG["drums_pitch_range"][0], TOKENIZER_CONFIG["drums_pitch_range"][1] + 1)

# Learning. Measured (docs/styles.md): held-out loss stops falling after 20-40 steps of 16 windows.
MIN_GROOVES = 3
UNLIKE_DRUMS = 4.0  # nats a token on the base genre: grooves the model finds this unlikely may not be drums at all
MAX_GROOVES = 20  # the daemon's limit per learn_style request; more adds little for a 30-weight style
MIN_BARS = 4  # a shorter groove is looped to this length, as Live loops a clip
WINDOW_BARS = 2  # the bars right after the prefix are the ones the style steers most
MAX_WINDOW_TOKENS = 160  # two bars are ~70 tokens, two very busy ones ~150
STEPS = 40
BATCH = 16
LR = 0.1
PULL = 3e-3  # L2 weight on the distance from the starting genre's one-hot
# Adam moves a weight by about LR a step, so learning leaves each within ~1 + LR x the most steps = 11
# of 0. A file with one past 100 was edited by hand: a blend of embeddings that large can overflow
# to NaN, and a sampler fed NaN plays the same notes whatever was asked.
WEIGHT_LIMIT = 100.0
SCAN_WINDOWS, SCAN_TOKENS = 64, 40  # picking the closest genre and drummer: an early look at many windows
EVAL_WINDOWS = 64  # the before/after loss stored with a style
KIND = "beat"  # a style is taught with grooves, so they are fit as beats
# Intra-op threads while learning. As for sampling (daemon/generate.py), a second thread buys
# little when another process holds a core (Live, the daemon): measured here under load, one
# thread learned 2x faster than two.
THREADS = 1


Progress = Callable[[int, int], None]  # (units done, units in all): scanned candidates, steps, evaluations


class StyleError(ValueError):
    """A refusal a musician can read: bad files, a bad name, a damaged or foreign style."""


class UnknownStyle(StyleError, KeyError):
    """No style by that name; a KeyError too, as `resolve` promises."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no style named {self.name!r}; `drumigen style list` shows them"


# --- built-in styles -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A well-known feel made of what the model already knows: a blend of GMD genres, and a
    hand-written groove template."""

    mix: dict[str, float]  # genre -> share
    template: Feel
    about: str
    anchors: OnTheBeat | None = None  # hits in every bar, whatever the blend would play


PRESETS = {
    "laid-back-hiphop": Preset(
        {"hiphop": 0.7, "jazz": 0.3}, Feel(swing16=0.25, lay_back=(("snare", 0.15),)),
        "70% hiphop + 30% jazz; 16ths swung (~56%), snare a little behind the beat"),
    "disco-funk": Preset(
        {"dance": 0.6, "funk": 0.4}, Feel(),
        "60% dance (GMD's 7 disco and breakbeat grooves) + 40% funk; a kick on every beat, pulled towards the grid",
        OnTheBeat()),
    "house": Preset(
        {"dance": 1.0}, Feel(),
        "GMD's dance (disco and breakbeat); a kick on every beat (four on the floor), on the grid", OnTheBeat()),
    "motown-soul": Preset(
        {"soul": 0.6, "funk": 0.4}, Feel(lay_back=(("snare", 0.1),)),
        "60% soul + 40% funk; straight, snare slightly behind the beat"),
    "second-line": Preset(
        {"neworleans": 0.7, "funk": 0.3}, Feel(swing16=0.33),
        "70% neworleans + 30% funk; 16ths swung (~58%)"),
    "shuffle-blues": Preset(
        {"blues": 0.5, "rock": 0.5}, Feel(swing8=0.67),
        "50% blues + 50% rock; off-beat 8ths on the triplet (a shuffle)"),
    "afro-groove": Preset(
        {"afrobeat": 0.6, "highlife": 0.2, "funk": 0.2}, Feel(swing16=0.1),
        "60% afrobeat + 20% highlife + 20% funk; 16ths lightly swung"),
}
BUILTIN = frozenset({*GENRES, *DRUMMERS, *PRESETS, "any"})


def spelled(name: str) -> str:
    """A style name as it is stored (lower case), and a genre's as GMD writes it: "Hip-Hop" and
    "new orleans" are hiphop and neworleans."""
    key = name.strip().lower()
    compact = re.sub(r"[-_ ]", "", key)
    return compact if compact in GENRES else key


def check_name(name: str) -> str:
    """The name as stored (lower case); a StyleError when it is odd or taken by a built-in style."""
    clean = name.strip().lower()
    if not NAME_PATTERN.fullmatch(clean):
        raise StyleError(f"style name {brief(name)} won't do: use 1-40 letters, digits, '-' or '_' (like my-funk)")
    if spelled(clean) in BUILTIN:  # "hip-hop" is hiphop's: a style of that name could not be asked for
        raise StyleError(f"{clean!r} is a built-in style; choose another name")
    return clean


# --- learned styles on disk ----------------------------------------------------------------------
def default_folder() -> Path:
    """$MIDIDRUMIGEN_STYLES, else $XDG_DATA_HOME/mididrumigen/styles (~/.local/share by default)."""
    if os.environ.get(FOLDER_ENV):
        return Path(os.environ[FOLDER_ENV]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "mididrumigen" / "styles"


_fingerprints: dict[int, tuple[weakref.ref, int, str]] = {}


def fingerprint(weight: torch.Tensor) -> str:
    """A short hash of a model's token embeddings: a style means something only to the model it was
    learned on. Cached per tensor version, because the daemon asks per request."""
    ref, version, digest = _fingerprints.get(id(weight), (None, -1, ""))
    if ref is not None and ref() is weight and version == weight._version:
        return digest
    digest = hashlib.sha256(weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()[:16]
    _fingerprints[id(weight)] = (weakref.ref(weight), weight._version, digest)
    return digest


@dataclass
class Style:
    """A learned style as stored: its genre-slot weights by token name (robust to id order), its
    drummer, its feel, what it was learned from and on which model."""

    name: str
    base: str  # the genre learning started from
    weights: dict[str, float]  # token name -> weight, non-zero entries only
    drummer: str | None  # the drummer slot it was learned with; None is `any`
    template: GrooveTemplate | None
    sources: list[str]
    checkpoint: str  # file name of the model
    fingerprint: str  # `fingerprint` of that model's token embeddings
    created: str
    fit: dict  # how learning went: grooves, windows, steps, seconds, loss before and after
    # The grooves' density and complexity levels, which generate plays where a request leaves them
    # open (learning fits the vector with them open: a jazz style from takes of 13.4 hits a bar
    # played 15.3-16.4). None: a style learned before they were stored.
    levels: tuple[int, int] | None = None
    # What the grooves play in every bar (anchors.Anchors.measure), kept in every bar generated.
    # None: nothing that constant, or a style learned before anchors were stored.
    anchors: Anchors | None = None

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "created": self.created,
            "base": self.base, "drummer": self.drummer, "weights": self.weights,
            "template": None if self.template is None else self.template.to_json(),
            "sources": self.sources, "checkpoint": {"file": self.checkpoint, "tok_emb_sha256": self.fingerprint},
            "fit": self.fit,
            "levels": None if self.levels is None else {"density": self.levels[0], "complexity": self.levels[1]},
            "anchors": None if self.anchors is None else self.anchors.to_json(),
        }

    @classmethod
    def from_json(cls, data: object, origin: str) -> "Style":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StyleError(f"{origin} is not a MidiDrumiGen style file")
        if data.get("version") != FORMAT_VERSION:
            raise StyleError(f"{origin} is style format {data.get('version')!r}; this MidiDrumiGen reads "
                             f"{FORMAT_VERSION}")
        try:
            weights = {str(k): float(v) for k, v in data["weights"].items()}
            if not weights or not all(math.isfinite(v) and abs(v) <= WEIGHT_LIMIT for v in weights.values()):
                raise ValueError(f"its weights are empty, not numbers or beyond ±{WEIGHT_LIMIT:g}")
            drummer = data["drummer"]
            if drummer is not None and drummer not in DRUMMERS:
                raise ValueError(f"unknown drummer {drummer!r}")
            if data["base"] not in GENRES:  # humanize plays a learned style in its base genre's feel
                raise ValueError(f"unknown base genre {data['base']!r}")
            stored = data.get("levels")
            levels = None if stored is None else (stored["density"], stored["complexity"])
            if levels is not None and not all(type(x) is int and 0 <= x < LEVELS for x in levels):
                raise ValueError(f"its levels {levels!r} are not whole numbers 0-{LEVELS - 1}")
            return cls(
                name=str(data["name"]), base=str(data["base"]), weights=weights, drummer=drummer,
                template=None if data["template"] is None else GrooveTemplate.from_json(data["template"]),
                sources=[str(s) for s in data["sources"]], checkpoint=str(data["checkpoint"]["file"]),
                fingerprint=str(data["checkpoint"]["tok_emb_sha256"]), created=str(data["created"]),
                fit=dict(data.get("fit") or {}), levels=levels,
                anchors=None if data.get("anchors") is None else Anchors.from_json(data["anchors"]),
            )
        except Exception as err:  # whatever a hand-edited or truncated file holds: never past here
            raise StyleError(f"{origin} is damaged ({type(err).__name__}: {err}); delete it or import a good copy") from None

    def check(self, model: DrumTransformer) -> None:
        """Refuse a style learned on another model: its weights would mean something else there."""
        if fingerprint(model.tok_emb.weight) != self.fingerprint:
            raise StyleError(f"style {self.name!r} was learned on another model than this one ({self.checkpoint} "
                             f"with embeddings {self.fingerprint}); learn it again with `drumigen style learn "
                             f"{self.name} FILES --replace` (it was learned from: {', '.join(self.sources)})")

    def token_weights(self, vocab: Vocabulary) -> dict[int, float]:
        unknown = [t for t in self.weights if t not in vocab.ids]
        if unknown:
            raise StyleError(f"style {self.name!r} uses tokens this model lacks ({', '.join(unknown[:3])}); "
                             "learn it again")
        return {vocab.ids[t]: w for t, w in self.weights.items()}


_NUMBER_LIST = re.compile(r"\[\s*(?:(?:-?[\d.eE+]+|null),\s*)*(?:-?[\d.eE+]+|null)\s*\]")


def _umask() -> int:
    """The process's umask; read once at import (setting it to read it is not thread-safe later)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _write_json(path: Path, data: dict) -> None:
    """Written to a temporary file first, then renamed: a crash leaves the old file or the new one.
    Lists of numbers stay on one line, so a template reads as a row per piece group."""
    text = _NUMBER_LIST.sub(lambda m: re.sub(r"\s+", "", m.group()).replace(",", ", "), json.dumps(data, indent=1))
    if path.exists() and not path.is_file():  # renaming over a device or a pipe would replace it, not write to it
        raise StyleError(f"{path} is not a regular file: give a file name (or a folder to export into)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise StyleError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w") as f:
            with contextlib.suppress(OSError):  # as any file the user writes: mkstemp's 0600 keeps a shared style private
                os.chmod(tmp, 0o666 & ~_UMASK)
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):  # a full disk, found after a minute of learning: the user's to mend, not a bug
            raise StyleError(f"cannot write {path}: {err.strerror or err}") from None
        raise


class StyleLibrary:
    """The user's learned styles: one JSON file per style in `folder`."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def list(self) -> list[str]:
        """Every style file's name, damaged ones included (so they can be deleted)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if NAME_PATTERN.fullmatch(p.stem))

    def load(self, name: str) -> Style:
        key = name.strip().lower()
        path = self.path(key)
        if not NAME_PATTERN.fullmatch(key) or not path.is_file():
            raise UnknownStyle(name)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise StyleError(f"style {key!r} is damaged ({path}: {err}); delete it with "
                             f"`drumigen style delete {key}`") from None
        style = Style.from_json(data, f"style file {path}")
        if style.name != key:
            raise StyleError(f"style file {path} holds style {style.name!r}; rename the file back or import it")
        return style

    def check_writable(self) -> None:
        """StyleError unless a style can be written here (the folder made if need be)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as err:
            raise StyleError(f"cannot save styles in {self.folder}: {err.strerror or err}") from None

    def save(self, style: Style, replace: bool = False) -> Path:
        path = self.path(check_name(style.name))
        if path.exists() and not replace:
            raise StyleError(f"there is already a style named {style.name!r}; choose another name or replace it "
                             "(`--replace`; over the wire, `replace: true`)")
        _write_json(path, style.to_json())
        return path

    def rename(self, old: str, new: str) -> Style:
        style = self.load(old)
        new = check_name(new)
        if self.path(new).exists():
            raise StyleError(f"there is already a style named {new!r}")
        old_path, style.name = self.path(style.name), new
        self.save(style)
        old_path.unlink()
        return style

    def delete(self, name: str) -> None:
        key = name.strip().lower()
        if not NAME_PATTERN.fullmatch(key) or not self.path(key).is_file():
            raise UnknownStyle(name)
        self.path(key).unlink()

    def export(self, name: str, path: Path) -> Path:
        """A copy of the style at `path` (a .json file, or a folder to put `<name>.json` in: one
        that exists, or a path written with a trailing slash). Any other name is refused: given
        `groove.mid`, the style's JSON replaced the user's MIDI file."""
        style = self.load(name)
        folder = Path(path).is_dir() or str(path).endswith(("/", os.sep))
        target = Path(path) / f"{style.name}.json" if folder else Path(path)
        if target.suffix.lower() != ".json":
            raise StyleError(f"{target}: a style is exported as a .json file (or into a folder); "
                             f"try {target.with_suffix('.json')}")
        _write_json(target, style.to_json())
        return target

    def import_(self, path: Path, name: str | None = None, model_fingerprint: str | None = None,
                vocab: Vocabulary | None = None) -> Style:
        """A style file from elsewhere, checked (with `model_fingerprint`, that it was learned on
        that model: fingerprint(tok_emb); with `vocab`, that its tokens are that model's: a
        hand-edited `genre_polka` was imported, listed as fine, and refused by every request),
        added under its own name or `name`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StyleError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
            raise StyleError(f"{path} is not a style file ({err})") from None
        style = Style.from_json(data, str(path))
        if model_fingerprint is not None and style.fingerprint != model_fingerprint:
            raise StyleError(f"{path} was learned on another model ({style.checkpoint}, embeddings "
                             f"{style.fingerprint}); learn it again here from its grooves: {', '.join(style.sources)}")
        if vocab is not None:
            style.token_weights(vocab)
        style.name = check_name(name or style.name)
        if self.path(style.name).exists():
            raise StyleError(f"there is already a style named {style.name!r}; import it under another name")
        self.save(style)
        return style


# --- reading grooves -----------------------------------------------------------------------------
def read_groove(path: Path, kit_map: dict[int, int] | None = None) -> Groove:
    """A MIDI file's drum part, read as every file command reads one (daemon.midifile.read), its
    pads heard through `kit_map` (a Drum Rack of the user's own) as the pieces they play."""
    from daemon import midifile

    path = Path(path)
    try:
        read = midifile.read(path)
    except midifile.MidiFileError as err:
        raise StyleError(str(err)) from None
    piece = kit.heard_as(kit_map or {})
    return groove_from_notes(path.name, [replace(n, pitch=piece(n.pitch)) for n in read.notes], read.tempo, read.meter)


def groove_from_notes(name: str, notes: list[Note], tempo: float, meter: tuple[int, int],
                      length: float | None = None) -> Groove:
    """A groove from notes in beats, `length` beats long (a clip's loop; by default up to the bar
    of its last note); a StyleError when none, or fewer than half, are drums the model plays."""
    piece = kit.played_as({}, (n.pitch for n in notes))  # a clap as the snare, a shaker as the hats: pieces it knows
    drums, seen = [], set()
    for n in sorted(notes, key=lambda n: -n.velocity):  # a clap layered on the snare is one snare hit, the louder
        key = (piece(n.pitch), round(n.start * POSITIONS_PER_BEAT * meter[1] / 4))
        if key[0] in DRUM_PITCHES and n.velocity > 0 and n.start >= 0 and key not in seen:
            seen.add(key)
            drums.append(replace(n, pitch=key[0]))
    drums.sort(key=lambda n: (n.start, n.pitch))
    if not drums:
        raise StyleError(f"{name} has no drum notes (GM drum pitches {DRUM_PITCHES[0]}-{DRUM_PITCHES[-1]})")
    sounding = sum(n.velocity > 0 and n.start >= 0 for n in notes)
    if 2 * len(drums) < sounding:  # a scale was learned as a style, its low notes read as drums
        raise StyleError(f"{name} is mostly not drums: {len(drums)} of its {sounding} notes are on GM drum pitches "
                         f"{DRUM_PITCHES[0]}-{DRUM_PITCHES[-1]} (a melody or a Drum Rack that needs --kit?)")
    if not (math.isfinite(tempo) and tempo > 0):
        raise StyleError(f"{name} has no usable tempo ({tempo!r})")
    if not (meter[0] > 0 and meter[1] > 0):
        raise StyleError(f"{name} has no usable time signature ({meter[0]}/{meter[1]})")
    bar = bar_beats(meter)
    if length is not None and length < bar - 1e-6:  # a loop shorter than a bar plays again within it, as in Live
        drums = [n for n in drums if n.start < length]
        drums = sorted((replace(n, start=round(n.start + k * length, 6)) for k in range(math.ceil(bar / length - 1e-6))
                        for n in drums if n.start + k * length < bar - 1e-6), key=lambda n: (n.start, n.pitch))
        if not drums:
            raise StyleError(f"{name} has no drum notes inside its {length:g}-beat loop")
    bars = math.floor(drums[-1].start / bar + 1e-6) + 1 if length is None else max(1, math.ceil(length / bar - 1e-6))
    return Groove(name, drums, float(tempo), (int(meter[0]), int(meter[1])), bars)


def windows(groove: Groove, vocab: Vocabulary) -> list[list[int]]:
    """Prefix + the first WINDOW_BARS bars from every bar with hits (looped up to MIN_BARS first).
    The drummer slot is `any` here; learning sets it."""
    if groove.meter not in vocab.meters:
        raise StyleError(f"{groove.name} is in {groove.meter[0]}/{groove.meter[1]}, which the model does not play")
    length = groove.bars * bar_beats(groove.meter)
    loops = math.ceil(MIN_BARS / groove.bars)
    notes = [replace(n, start=n.start + k * length) for k in range(loops) for n in groove.notes]
    base = vocab.encode_notes(notes, groove.meter)
    starts, hits, _ = bar_stats(base, vocab)
    prefix = vocab.prefix(Conditions(tempo=groove.tempo, meter=groove.meter, kind=KIND))
    out = []
    for b, first in enumerate(starts):
        if hits[b]:
            end = starts[b + WINDOW_BARS] if b + WINDOW_BARS < len(starts) else len(base)
            out.append(prefix + vocab.merge(base[first:end])[:MAX_WINDOW_TOKENS])
    if not out:
        raise StyleError(f"{groove.name} has no bar the model can read")
    return out


# --- learning ------------------------------------------------------------------------------------
def support(vocab: Vocabulary) -> list[int]:
    """The tokens a learned style may use: every genre-slot and drummer-slot token, `any`s included."""
    return [i for slot, count in (("genre", len(GENRES)), ("drummer", len(DRUMMERS)))
            for i in range(vocab.slot_base[slot], vocab.slot_base[slot] + count + 1)]


def batch(sequences: list[list[int]], drummer: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets padded to the longest; prefix targets are not predicted."""
    T = max(len(s) for s in sequences)
    x = torch.full((len(sequences), T), pad, dtype=torch.long)
    y = torch.full((len(sequences), T), -1, dtype=torch.long)
    for row, s in enumerate(sequences):
        x[row, : len(s)] = torch.tensor(s)
        y[row, len(SLOTS) - 1 : len(s) - 1] = torch.tensor(s[len(SLOTS) :])
    x[:, SLOTS.index("drummer")] = drummer
    return x, y


def loss(model: DrumTransformer, weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL with `weights` (V,) blended into the genre slot of every row."""
    slot = torch.full((len(x),), SLOTS.index("genre"), dtype=torch.long)
    logits = model(x, prefix_mix=(slot, weights.expand(len(x), -1)))
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)


@torch.no_grad()
def nll(model: DrumTransformer, weights: torch.Tensor, sequences: list[list[int]], drummer: int,
        pad: int, rows: int = 64) -> float:
    """Mean NLL per token of `sequences` under a genre-slot vector."""
    total, count = 0.0, 0
    for i in range(0, len(sequences), rows):
        x, y = batch(sequences[i : i + rows], drummer, pad)
        n = int((y >= 0).sum())
        total += float(loss(model, weights, x, y)) * n
        count += n
    return total / max(count, 1)


def one_hot(vocab: Vocabulary, token: int) -> torch.Tensor:
    w = torch.zeros(len(vocab))
    w[token] = 1.0
    return w


@dataclass
class Fit:
    base: str
    drummer: str | None
    weights: torch.Tensor  # (V,)
    report: dict


def fit(model: DrumTransformer, vocab: Vocabulary, per_groove: list[list[list[int]]], steps: int = STEPS,
        progress: Progress | None = None, seed: int = 0) -> Fit:
    """Learn a genre-slot vector for the grooves' windows (`per_groove`: each groove's windows).

    Grooves weigh the same whatever their length: a batch draws a groove, then one of its windows.
    Only the style vector gets gradients (autograd.grad), so the shared model is never touched.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _fit(model, vocab, per_groove, steps, progress, random.Random(seed))
    finally:
        torch.set_num_threads(threads)


def _fit(model: DrumTransformer, vocab: Vocabulary, per_groove: list[list[list[int]]], steps: int,
         progress: Progress | None, rng: random.Random) -> Fit:
    total, done = len(GENRES) + 1 + len(DRUMMERS) + steps + 2, 0

    def tick(value: float = 0.0) -> float:
        """One unit of work done (a candidate scanned, a step, an evaluation): tell `progress`."""
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        return value

    shuffled = [rng.sample(ws, len(ws)) for ws in per_groove]
    spread = [ws[k] for k in range(max(map(len, shuffled))) for ws in shuffled if k < len(ws)]  # round robin
    scan = [w[: len(SLOTS) + SCAN_TOKENS] for w in spread[:SCAN_WINDOWS]]
    judged = spread[:EVAL_WINDOWS]
    any_drummer = vocab.slot_id("drummer", None)
    base = min(GENRES, key=lambda g: tick(nll(model, one_hot(vocab, vocab.slot_id("genre", g)), scan, any_drummer,
                                               vocab.pad)))
    start = one_hot(vocab, vocab.slot_id("genre", base))
    drummer = min((None, *DRUMMERS), key=lambda d: tick(nll(model, start, scan, vocab.slot_id("drummer", d), vocab.pad)))
    drummer_id = vocab.slot_id("drummer", drummer)

    ids = torch.tensor(support(vocab))
    origin = start[ids]
    p = origin.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([p], lr=LR)
    for _ in range(steps):
        x, y = batch([rng.choice(rng.choice(per_groove)) for _ in range(BATCH)], drummer_id, vocab.pad)
        weights = torch.zeros(len(vocab)).index_put((ids,), p)
        objective = loss(model, weights, x, y) + PULL * (p - origin).pow(2).sum()
        (p.grad,) = torch.autograd.grad(objective, [p])
        optimizer.step()
        tick()
    learned = torch.zeros(len(vocab)).index_put((ids,), p.detach())
    report = {
        "loss_base": round(tick(nll(model, start, judged, any_drummer, vocab.pad)), 4),
        "loss_style": round(tick(nll(model, learned, judged, drummer_id, vocab.pad)), 4),
    }
    return Fit(base, drummer, learned, report)


def learn_style(name: str, files: list[Path], checkpoint_path: Path = checkpoint.BUNDLED, steps: int = STEPS,
                progress: Progress | None = None, folder: Path | None = None,
                replace: bool = False, kit_map: dict[int, int] | None = None) -> Style:
    """Learn a style from 3-20 MIDI grooves (played on `kit_map`'s pads) and save it in the style
    folder (about 15-60 s)."""
    # a groove given twice counts once, by path or as a copy (three copies of one are not three grooves)
    given = len(files)
    files = list({Path(f).resolve().read_bytes() if Path(f).is_file() else Path(f).resolve(): Path(f).resolve()
                  for f in files}.values())
    repeated = given - len(files)
    copies = [f"{repeated} file{'s' * (repeated > 1)} repeating another groove, counted once"] if repeated else []
    if not files:
        raise StyleError("no MIDI files given: a style is learned from 3 or more of your grooves")
    if len(files) > MAX_GROOVES:
        raise StyleError(f"{len(files)} files given; a style is learned from {MIN_GROOVES}-{MAX_GROOVES} grooves")
    if not LEARN_STEPS_RANGE[0] <= steps <= LEARN_STEPS_RANGE[1]:
        raise StyleError(f"steps must be {LEARN_STEPS_RANGE[0]}-{LEARN_STEPS_RANGE[1]}, got {steps}")
    grooves, problems = [], copies
    for path in files:
        try:
            grooves.append(read_groove(Path(path), kit_map))
        except StyleError as err:
            problems.append(str(err))
    return _learn(name, grooves, problems, checkpoint_path, steps, progress, folder, replace)


def learn_style_from_clips(name: str, clips: list[tuple[list[Note], float, tuple[int, int], float]],
                           checkpoint_path: Path = checkpoint.BUNDLED, steps: int = STEPS,
                           progress: Progress | None = None, folder: Path | None = None,
                           replace: bool = False, loaded: tuple[DrumTransformer, Vocabulary] | None = None) -> Style:
    """Learn a style from Live clips (notes in beats, tempo, meter, loop length in beats), as the
    daemon receives them; `loaded` is the daemon's model, so it is not read again."""
    if not clips:
        raise StyleError("no clips given: a style is learned from 3 or more of your grooves")
    grooves, problems, seen = [], [], set()
    for i, (notes, tempo, meter, length) in enumerate(clips, 1):
        same = (tuple(sorted((n.start, n.pitch, n.velocity) for n in notes)), tempo, tuple(meter), length)
        if same in seen:  # one clip sent three times is not three grooves, as with files
            problems.append(f"clip {i} repeats another clip, counted once")
            continue
        seen.add(same)
        try:
            grooves.append(groove_from_notes(f"clip {i}", notes, tempo, tuple(meter), length))
        except StyleError as err:
            problems.append(str(err))
    return _learn(name, grooves, problems, checkpoint_path, steps, progress, folder, replace, loaded)


def _learn(name: str, grooves: list[Groove], problems: list[str], checkpoint_path: Path, steps: int,
           progress: Progress | None, folder: Path | None, replace: bool,
           loaded: tuple[DrumTransformer, Vocabulary] | None = None) -> Style:
    started = time.perf_counter()
    name = check_name(name)
    library = StyleLibrary(folder)
    if library.path(name).exists() and not replace:
        raise StyleError(f"there is already a style named {name!r}; choose another name or replace it "
                         "(`--replace`; over the wire, `replace: true`)")
    _enough(grooves, problems)  # before loading the model: a refusal should be quick
    library.check_writable()  # and before learning: a folder it cannot save in was found a minute later
    model, vocab = loaded or checkpoint.load(Path(checkpoint_path))[:2]
    usable, per_groove = [], []
    for groove in grooves:
        try:
            per_groove.append(windows(groove, vocab))
            usable.append(groove)
        except StyleError as err:
            problems.append(str(err))
    _enough(usable, problems)
    result = fit(model, vocab, per_groove, steps, progress)
    weights = {vocab.names[i]: round(float(w), 6) for i, w in enumerate(result.weights.tolist()) if round(w, 6) != 0}
    template = GrooveTemplate.measure(usable)
    style = Style(
        name=name, base=result.base, weights=weights, drummer=result.drummer,
        template=template, sources=[g.name for g in usable],
        checkpoint=Path(checkpoint_path).name, fingerprint=fingerprint(model.tok_emb.weight),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        fit={"grooves": len(usable), "windows": sum(map(len, per_groove)), "steps": steps,
             "seconds": round(time.perf_counter() - started, 1), "skipped": problems, **result.report},
        levels=levels_of([t for g in usable for t in vocab.encode_notes(g.notes, g.meter)], vocab),
        anchors=Anchors.measure(usable, template.meter),
    )
    library.save(style, replace=replace)
    return style


def _enough(grooves: list[Groove], problems: list[str]) -> None:
    if len(grooves) < MIN_GROOVES:
        skipped = f"; skipped: {'; '.join(problems)}" if problems else ""
        raise StyleError(f"a style needs at least {MIN_GROOVES} grooves with drum notes, got {len(grooves)}{skipped}")


# --- the integration point -------------------------------------------------------------------------
class Resolved(NamedTuple):
    """What a style name means for sampling: genre-slot weights {token id: weight}, the drummer
    it brings (a default for a request that leaves the drummer open), its groove template, the
    genres humanize hears in it {genre: share} (a preset's blend; a learned style's, the genre it
    was learned from; a drummer plays any: none), and a learned style's density and complexity
    levels (defaults for a request that leaves them open)."""

    weights: dict[int, float]
    drummer: str | None = None
    template: GrooveTemplate | Feel | None = None  # a learned style's measured one, a preset's feel
    genres: dict[str, float] | None = None
    levels: tuple[int, int] | None = None
    anchors: Anchors | OnTheBeat | None = None  # hits in every bar (daemon/anchors.py)

    @property
    def feel(self) -> str | None:
        """The genre whose feel humanize plays the style in (it knows genres): the strongest, the
        first in GENRES' order on a tie (a preset of two genres half and half)."""
        return max((g for g in GENRES if g in self.genres), key=self.genres.get) if self.genres else None


def resolve(name: str, vocab: Vocabulary, model: DrumTransformer | None = None,
            folder: Path | None = None) -> Resolved:
    """Any style name: a genre, a preset, `drummerN` or a learned style (its file read once).
    UnknownStyle (a KeyError) for an unknown name; with `model`, StyleError for a style learned
    on another model."""
    key = name.strip().lower()
    if key in GENRES:
        return Resolved({vocab.slot_id("genre", key): 1.0}, genres={key: 1.0})
    if key in DRUMMERS:
        return Resolved({vocab.slot_id("genre", None): 1.0}, drummer=key)
    if key in PRESETS:
        preset = PRESETS[key]
        total = sum(preset.mix.values())
        return Resolved({vocab.slot_id("genre", g): share / total for g, share in preset.mix.items()},
                        template=preset.template, genres={g: share / total for g, share in preset.mix.items()},
                        anchors=preset.anchors)
    style = StyleLibrary(folder).load(key)
    if model is not None:
        style.check(model)
    return Resolved(style.token_weights(vocab), style.drummer, style.template, {style.base: 1.0}, style.levels,
                    style.anchors)


def push(weights: dict[int, float], strength: float, plain: int) -> dict[int, float]:
    """Genre-slot weights moved from the `plain` (`any`) token by `strength`: plain + strength x
    (style - plain). 1 leaves them as they are; 0 is `plain` alone."""
    if strength == 1.0:
        return dict(weights)
    out = {token: strength * value for token, value in weights.items()}
    out[plain] = out.get(plain, 0.0) + 1.0 - strength
    return out


def resolve_mix(mix: dict[str, float], vocab: Vocabulary, model: DrumTransformer | None = None,
                folder: Path | None = None, strengths: dict[str, float] | None = None) -> Resolved:
    """A weighted blend of styles: their weights, each pushed from `any` by its strength in
    `strengths` (default 1), mixed by share. The heaviest style lends its template, levels and anchors,
    the heaviest one that brings a drummer its drummer (ties: the first named), and the genres
    are the parts' as mixed; a style at weight 0 lends nothing, though its name must still exist."""
    total = sum(mix.values())
    parts = {name: resolve(name, vocab, model, folder) for name in mix}
    heaviest_first = sorted((name for name in mix if mix[name] > 0), key=lambda name: -mix[name])
    weights: dict[int, float] = {}
    for name in reversed(heaviest_first):
        pushed = push(parts[name].weights, (strengths or {}).get(name, 1.0), vocab.slot_base["genre"])
        for token, value in pushed.items():
            weights[token] = weights.get(token, 0.0) + value * mix[name] / total
    drummer = next((parts[name].drummer for name in heaviest_first if parts[name].drummer), None)
    genres: dict[str, float] = {}  # the parts' genres as mixed (a preset's blend counts genre by genre)
    for name in heaviest_first:
        for genre, share in (parts[name].genres or {}).items():
            genres[genre] = genres.get(genre, 0.0) + share * mix[name] / total
    heaviest = parts[heaviest_first[0]]
    return Resolved(weights, drummer, heaviest.template, genres, heaviest.levels, heaviest.anchors)


def all_names(folder: Path | None = None, model: DrumTransformer | None = None,
              vocab: Vocabulary | None = None) -> list[str]:
    """Every style a request may name: genres, presets, drummers, then the learned styles that
    load (and, given the model and its vocabulary, were learned on that model: the others would
    only be refused)."""
    library = StyleLibrary(folder)
    learned = []
    for name in library.list():
        try:
            style = library.load(name)
            if model is not None and vocab is not None:
                style.check(model)
                style.token_weights(vocab)
            learned.append(name)
        except StyleError:
            continue  # damaged or another model's: `drumigen style list` says what is wrong with it
    return [*GENRES, *PRESETS, *DRUMMERS, *learned]


# --- `drumigen style ...` (the parser is in daemon/cli.py; cli.main reports StyleError and OSError) ------------------------------------------------------------------------
def _midi_files(paths: list[Path]) -> list[Path]:
    """Files as given; folders become the .mid/.midi files inside them and their subfolders (a
    dataset's drummer/session/take.mid)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".mid", ".midi") and f.is_file())
        else:
            out.append(p)
    return out


def cmd_style_learn(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    bars: list[tqdm] = []  # opened at the first unit of work, so a refusal prints no empty bar

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=f"learning {args.name}", unit=" passes"))
        bars[0].update(done - bars[0].n)

    try:
        style = learn_style(args.name, _midi_files(args.files), args.checkpoint or checkpoint.BUNDLED,
                            STEPS if args.steps is None else args.steps, progress, folder=args.styles,
                            replace=args.replace,
                            kit_map=kit.load_map(args.kit or "gm"))  # a user's files: GM, a GM crash a crash
    finally:
        for bar in bars:
            bar.close()
    fit = style.fit
    drummer = f" with {style.drummer}'s hands" if style.drummer else ""
    print(f"learned style {style.name!r} from {fit['grooves']} grooves in {fit['seconds']:.0f} s: starts from "
          f"{style.base}{drummer}; loss on your grooves {fit['loss_base']:.3f} -> {fit['loss_style']:.3f}")
    if style.anchors:
        print(f"  plays in every bar of {style.anchors.meter[0]}/{style.anchors.meter[1]}, as your grooves do: "
              f"{style.anchors.describe()}")
    for skipped in fit["skipped"]:
        print(f"  skipped {skipped}")
    if fit["loss_base"] > UNLIKE_DRUMS:  # a song's piano and bass, read as drums, scored 5.7
        print(f"  note: the model finds these grooves unlike any drums it knows ({fit['loss_base']:.1f} nats a "
              f"token; GMD's held-out grooves score about 2.75): are they drum parts?")
    return 0


def cmd_style_list(args: argparse.Namespace) -> int:
    library = StyleLibrary(args.styles)
    current = fingerprint(checkpoint.load_state(args.checkpoint or checkpoint.BUNDLED)["model"]["tok_emb.weight"])
    print(f"your styles ({library.folder}):")
    for name in library.list():
        try:
            style = library.load(name)
        except StyleError as err:
            print(f"  {name:20} DAMAGED: {err}")
            continue
        stale = "" if style.fingerprint == current else "  [learned on another model: learn it again]"
        drummer = f" + {style.drummer}" if style.drummer else ""
        print(f"  {name:20} from {len(style.sources)} grooves, starts from {style.base}{drummer}, "
              f"{style.created[:10]}{stale}")
    print("presets:")
    for name, preset in PRESETS.items():
        print(f"  {name:20} {preset.about}")
    print("drummers: " + ", ".join(DRUMMERS) + " (a GMD drummer with any genre)")
    print("genres:   " + ", ".join(GENRES))
    return 0


def cmd_style_rename(args: argparse.Namespace) -> int:
    print(f"renamed {args.old!r} to {StyleLibrary(args.styles).rename(args.old, args.new).name!r}")
    return 0


def cmd_style_delete(args: argparse.Namespace) -> int:
    StyleLibrary(args.styles).delete(args.name)
    print(f"deleted style {args.name!r}")
    return 0


def cmd_style_export(args: argparse.Namespace) -> int:
    print(f"exported to {StyleLibrary(args.styles).export(args.name, args.path)}")
    return 0


def cmd_style_import(args: argparse.Namespace) -> int:
    model, vocab, _ = checkpoint.load(args.checkpoint or checkpoint.BUNDLED)
    style = StyleLibrary(args.styles).import_(args.path, args.name, fingerprint(model.tok_emb.weight), vocab)
    print(f"imported style {style.name!r}")
    return 0
