"""Tokens: MidiTok's REMI for the music, plus our own conditioning prefix.

A sequence is `[genre, drummer, tempo, meter, kind, density, complexity]` followed by REMI
bars: `Bar TimeSig_n/d (Position_p (PitchDrum_k Velocity_v)+)*`. Every prefix slot has a
`<slot>_any` token, used when a request leaves it out and, at train time, at random so the
model learns to play without it (which also makes classifier-free guidance possible).

Merged tokens: BPE (trained on the train split) merges frequent runs inside a bar, which cuts
sequences 1.66x and so generation time; each model id still knows its base REMI tokens
(`pieces`), which is what the grammar-constrained sampler reads. docs/tokenizer-study.md has
the measurements behind these settings.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING


from daemon import kit
from daemon.midifile import TICKS_PER_BEAT
from shared.notes import Note

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # MidiTok and symusic load on first use: the daemon starts faster without them
    import symusic

POSITIONS_PER_BEAT = 24  # of the meter's beat (the denominator's note value)
NUM_VELOCITIES = 32
BPE_VOCAB_SIZE = 1000

TOKENIZER_CONFIG = dict(
    pitch_range=(35, 60),
    drums_pitch_range=(35, 60),  # canonical kit only; MidiTok's default (27, 88) would drop less
    beat_res={(0, 4): POSITIONS_PER_BEAT},
    num_velocities=NUM_VELOCITIES,
    use_velocities=True,
    use_time_signatures=True,
    use_tempos=False,  # tempo is a prefix token of our own: MidiTok bins it per file anyway
    use_programs=False,
    use_note_duration_programs=[],  # drums are one-shots: no Duration tokens
    time_signature_range={8: [3, 5, 6, 7, 9, 12], 4: [1, 2, 3, 4, 5, 6, 7, 8], 2: [2, 3, 4]},
)

GENRES = (
    "rock", "funk", "hiphop", "jazz", "latin", "afrocuban", "punk", "neworleans", "soul",
    "country", "pop", "reggae", "gospel", "afrobeat", "dance", "blues", "middleeastern", "highlife",
)  # fmt: skip
DRUMMERS = tuple(f"drummer{i}" for i in range(1, 11))
KINDS = ("beat", "fill")
TEMPO_EDGES = tuple(range(50, 301, 10))  # bin i covers [edge i, edge i+1)
LEVELS = 5  # density and complexity are quintiles of the training data

SLOTS = ("genre", "drummer", "tempo", "meter", "kind", "density", "complexity")
NOTE_DURATION = 0.25  # beats: a 16th, long enough to trigger any drum rack pad


@dataclass(frozen=True)
class Conditions:
    """What a request asks for; None means 'any' (the slot's drop token)."""

    genre: str | None = None
    drummer: str | None = None
    tempo: float | None = None
    meter: tuple[int, int] | None = None
    kind: str | None = None
    density: int | None = None  # 0..LEVELS-1
    complexity: int | None = None  # 0..LEVELS-1


@dataclass(frozen=True)
class DrumHit:
    pitch: int
    start: float  # beats (quarter notes) from the sequence start
    velocity: int


def tempo_bin(bpm: float) -> int:
    clamped = min(max(bpm, TEMPO_EDGES[0]), TEMPO_EDGES[-1] - 1e-6)
    return int((clamped - TEMPO_EDGES[0]) // (TEMPO_EDGES[1] - TEMPO_EDGES[0]))


class Vocabulary:
    """MidiTok REMI ids first, then the conditioning tokens: one id space for the model.

    Everything sampling needs (what each id stands for, the base vocabulary) is plain data
    saved with the checkpoint, so the daemon starts without importing MidiTok; the MidiTok
    tokenizer itself is rebuilt from its JSON the first time a clip must be encoded.
    """

    def __init__(self, tokenizer_json: str, pieces: list[list[str]], base_vocab: dict[str, int],
                 ticks_per_quarter: int, density_edges: list[float], complexity_edges: list[float]) -> None:
        self.tokenizer_json = tokenizer_json
        self._tokenizer = None
        # pieces[i]: the base REMI tokens model id i stands for (one, or a BPE merge of several)
        self.pieces = [list(p) for p in pieces]
        self.bpe = any(len(p) > 1 for p in self.pieces)
        self.base_vocab = dict(base_vocab)  # unmerged REMI token -> id
        self.base_names = {i: t for t, i in self.base_vocab.items()}
        self.ticks_per_quarter = ticks_per_quarter  # of scores MidiTok decodes
        self.density_edges = list(density_edges)
        self.complexity_edges = list(complexity_edges)
        self.meters = tuple(
            tuple(int(x) for x in t.split("_")[1].split("/")) for t in self.base_vocab if t.startswith("TimeSig_")
        )
        self.slot_values = {
            "genre": GENRES,
            "drummer": DRUMMERS,
            "tempo": tuple(range(len(TEMPO_EDGES) - 1)),
            "meter": self.meters,
            "kind": KINDS,
            "density": tuple(range(LEVELS)),
            "complexity": tuple(range(LEVELS)),
        }
        names = [" ".join(p) for p in self.pieces]
        self.slot_base: dict[str, int] = {}
        for slot in SLOTS:
            self.slot_base[slot] = len(names)
            names.append(f"{slot}_any")
            names.extend(f"{slot}_{_fmt(v)}" for v in self.slot_values[slot])
        self.names = names
        self.ids = {n: i for i, n in enumerate(names)}
        self.bar = self.ids["Bar_None"]
        self.pad = self.ids["PAD_None"]

    @classmethod
    def from_tokenizer(cls, tokenizer, density_edges: list[float], complexity_edges: list[float]) -> "Vocabulary":
        from miditok import TokSequence

        def base_tokens(model_id: int) -> list[str]:
            if not tokenizer.is_trained:
                return [tokenizer[model_id]]
            seq = TokSequence(ids=[model_id], are_ids_encoded=True)
            tokenizer.decode_token_ids(seq)
            return list(seq.tokens)

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tokenizer.json"
            tokenizer.save(path)
            tokenizer_json = path.read_text()
        vocab = cls(tokenizer_json, [base_tokens(i) for i in range(len(tokenizer))], tokenizer.vocab,
                    tokenizer.time_division, density_edges, complexity_edges)
        vocab._tokenizer = tokenizer
        return vocab

    @property
    def tokenizer(self):
        """MidiTok's REMI tokenizer, rebuilt from the saved JSON on first use."""
        if self._tokenizer is None:
            from miditok import REMI

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "tokenizer.json"
                path.write_text(self.tokenizer_json)
                self._tokenizer = REMI(params=path)
            if dict(self._tokenizer.vocab) != self.base_vocab:
                raise ValueError("the checkpoint's tokenizer does not match its vocabulary; retrain it")
        return self._tokenizer

    @classmethod
    def build(cls, train_files: list[Path], bpe_vocab_size: int = BPE_VOCAB_SIZE) -> "Vocabulary":
        """A fresh tokenizer with BPE learned on the canonical-kit versions of `train_files`."""
        import symusic
        from miditok import REMI, TokenizerConfig

        tokenizer = REMI(TokenizerConfig(**TOKENIZER_CONFIG))
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, path in enumerate(train_files):
                try:
                    score = canonical_score(symusic.Score(str(path)))
                except Exception as exc:  # as data.load_dataset skips it: one bad file must not sink a run
                    log.warning("skipping %s: %s", path, exc)
                    continue
                paths.append(Path(tmp) / f"{i}.mid")
                score.dump_midi(str(paths[-1]))
            if not paths:
                raise ValueError(f"none of the {len(train_files)} train-split MIDI files could be read")
            tokenizer.train(vocab_size=bpe_vocab_size, model="BPE", files_paths=paths)
        return cls.from_tokenizer(tokenizer, [0.0] * (LEVELS - 1), [0.0] * (LEVELS - 1))

    def __len__(self) -> int:
        return len(self.names)

    # --- conditioning -------------------------------------------------------------------
    def slot_id(self, slot: str, value) -> int:
        """Id of a slot's token; None gives the slot's `any` token."""
        if value is None:
            return self.slot_base[slot]
        if slot == "tempo":
            value = tempo_bin(float(value))
        if slot == "meter":
            value = tuple(value)
        try:
            return self.slot_base[slot] + 1 + self.slot_values[slot].index(value)
        except ValueError:
            raise KeyError(f"{slot} {value!r} is not one the model knows") from None

    def prefix(self, cond: Conditions) -> list[int]:
        return [self.slot_id(s, getattr(cond, s)) for s in SLOTS]

    def level(self, value: float, which: str) -> int:
        edges = self.density_edges if which == "density" else self.complexity_edges
        return sum(value >= e for e in edges)

    # --- music ----------------------------------------------------------------------------
    def encode_score(self, score: symusic.Score) -> list[int]:
        """Unmerged REMI ids of a drum performance in the canonical kit (see `merge`)."""
        seq = self.tokenizer.encode(canonical_score(score), encode_ids=False)
        seq = seq[0] if isinstance(seq, list) else seq
        return list(seq.ids)

    def encode_notes(self, notes: list[Note], meter: tuple[int, int]) -> list[int]:
        """Unmerged REMI ids of drum notes (starts in beats) in one meter: how a producer's clip or
        groove reads to the model. Tempo is a prefix token of ours, not part of these."""
        import symusic

        if not notes:
            return []
        track = symusic.Track("drums", 0, True)
        for n in notes:
            track.notes.append(symusic.Note(round(n.start * TICKS_PER_BEAT), max(1, round(n.duration * TICKS_PER_BEAT)),
                                            n.pitch, n.velocity))
        score = symusic.Score(TICKS_PER_BEAT)
        score.time_signatures.append(symusic.TimeSignature(0, meter[0], meter[1]))
        score.tracks.append(track)
        return self.encode_score(score)

    def merge(self, base_ids: list[int]) -> list[int]:
        """Model ids: BPE applied bar by bar to unmerged REMI ids."""
        from miditok import TokSequence

        seq = TokSequence(ids=list(base_ids))
        if self.bpe:
            self.tokenizer.encode_token_ids(seq)
        return list(seq.ids)

    # --- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "tokenizer_json": self.tokenizer_json,
            "pieces": self.pieces,
            "base_vocab": self.base_vocab,
            "ticks_per_quarter": self.ticks_per_quarter,
            "names": self.names,
            "density_edges": self.density_edges,
            "complexity_edges": self.complexity_edges,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        vocab = cls(d["tokenizer_json"], d["pieces"], d["base_vocab"], d["ticks_per_quarter"], d["density_edges"],
                    d["complexity_edges"])
        if vocab.names != list(d["names"]):
            raise ValueError(
                "checkpoint vocabulary differs from this version's conditioning tokens; "
                "retrain with `drumigen train` or use the matching MidiDrumiGen version"
            )
        return vocab


def canonical_score(score: symusic.Score) -> symusic.Score:
    """One drum track in the canonical kit: all tracks merged, TD-11 edge zones mapped to GM."""
    if not score.tracks:
        raise ValueError("the MIDI file has no tracks")
    track = score.tracks[0]
    for other in score.tracks[1:]:
        track.notes.extend(other.notes)
    track.is_drum = True
    for note in track.notes:
        note.pitch = kit.to_canonical(note.pitch)
    score.tracks = [track]
    return score


def _fmt(value) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)
