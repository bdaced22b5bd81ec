"""What the daemon's fast paths are checked against: MidiTok's own decoder."""

from __future__ import annotations

from miditok import TokSequence

from daemon.vocab import DrumHit, Vocabulary


def miditok_hits(vocab: Vocabulary, ids: list[int]) -> list[DrumHit]:
    """Drum hits in beats, via MidiTok's decoder (the inverse of Vocabulary.encode_score); the
    grammar's TokenTable.hits does the same from the parsed pieces in microseconds."""
    music = [i for i in ids if i < len(vocab.pieces)]
    seq = TokSequence(ids=music, are_ids_encoded=vocab.bpe)
    score = vocab.tokenizer.decode([seq], programs=[(0, True)])
    tpq = score.ticks_per_quarter
    notes = score.tracks[0].notes if score.tracks else []
    return [DrumHit(n.pitch, n.time / tpq, n.velocity) for n in notes]
