"""MIDI files through mido: what we write reads back exactly; what we cannot read says why."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon import midifile
from shared.notes import Note
from shared.protocol import model_tempo

notes = st.lists(
    st.builds(Note, pitch=st.integers(35, 81), start=st.integers(0, 16 * 480 - 1).map(lambda t: t / 480),
              duration=st.integers(1, 480).map(lambda t: t / 480), velocity=st.integers(1, 127)),
    min_size=1, max_size=60, unique_by=lambda n: (n.pitch, n.start),
)


def cut_at_next_hit(notes: list[Note], length: float):
    """A note's expected read-back: it ends where the next hit on its pitch starts, or with the
    groove (its whole bars), if sooner."""
    def cut(n: Note) -> Note:
        later = [m.start for m in notes if m.pitch == n.pitch and m.start > n.start]
        end = min([n.start + n.duration, length, *later])
        return Note(n.pitch, n.start, round((end - n.start) * 480) / 480, n.velocity)
    return cut


@settings(max_examples=60, deadline=None)
@given(notes=notes, tempo=st.integers(40, 300), meter=st.sampled_from([(4, 4), (3, 4), (6, 8), (7, 8), (5, 4)]))
def test_write_then_read_is_exact(tmp_path_factory, notes, tempo, meter):
    path = tmp_path_factory.mktemp("m") / "g.mid"
    midifile.write(path, notes, tempo, meter)
    groove = midifile.read(path)
    expected = sorted(map(cut_at_next_hit(notes, groove.length), notes), key=lambda n: (n.start, n.pitch))
    read = sorted(groove.notes, key=lambda n: (n.start, n.pitch))
    assert [(n.pitch, n.start, n.velocity) for n in read] == [(n.pitch, n.start, n.velocity) for n in expected]
    assert [n.duration for n in read] == pytest.approx([n.duration for n in expected], abs=1e-9)
    # A file holds whole µs per beat: off by up to 0.5 µs, i.e. tempo² / 1.2e8 BPM, then read to 0.001 BPM.
    assert groove.tempo == pytest.approx(tempo, abs=tempo**2 / 1.2e8 + 5e-4) and groove.meter == meter
    bar = meter[0] * 4 / meter[1]
    assert groove.length % bar == pytest.approx(0) and groove.length > max(n.start for n in notes)


def test_written_files_are_drums_with_the_clip_length(tmp_path):
    path = tmp_path / "g.mid"
    midifile.write(path, [Note(36, 0.0, 0.25, 100)], 120, (4, 4), length=8.0)
    mid = mido.MidiFile(path)
    assert {m.channel for m in mid if m.type.startswith("note")} == {midifile.DRUM_CHANNEL}
    assert mid.length == pytest.approx(4.0)  # 8 beats at 120 BPM: the trailing rest is kept
    assert midifile.read(path).length == 8.0


def test_any_channel_and_running_note_on_zero_offs_are_read(tmp_path):
    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack([mido.Message("note_on", channel=0, note=38, velocity=80, time=48),
                            mido.Message("note_on", channel=0, note=38, velocity=0, time=12)])
    mid.tracks.append(track)
    mid.save(tmp_path / "a.mid")
    groove = midifile.read(tmp_path / "a.mid")
    assert groove.notes == [Note(38, 0.5, 0.125, 80)] and groove.tempo == 120.0 and groove.meter == (4, 4)


def _channels_file(path, parts: dict[int, list[int]]) -> None:
    """One 16th-note hit per pitch in `parts[channel]`, a 16th apart, per channel."""
    mid = mido.MidiFile(ticks_per_beat=96)
    events = []
    for channel, pitches in parts.items():
        for i, pitch in enumerate(pitches):
            events += [(i * 24, mido.Message("note_on", channel=channel, note=pitch, velocity=90)),
                       (i * 24 + 12, mido.Message("note_off", channel=channel, note=pitch))]
    now, track = 0, mido.MidiTrack()
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    mid.tracks.append(track)
    mid.save(path)


def test_a_drum_part_on_channel_10_is_read_without_the_song_around_it(tmp_path, caplog):
    """A song's chords and bass, even when they outnumber the drums, are not drums."""
    _channels_file(tmp_path / "a.mid", {midifile.DRUM_CHANNEL: [36, 42, 38, 42], 0: [60, 64, 67] * 3, 1: [40, 40, 43]})
    assert [n.pitch for n in midifile.read(tmp_path / "a.mid").notes] == [36, 42, 38, 42]
    assert "drum channel (10) alone, leaving out 9 notes on channel 1, 3 notes on channel 2" in caplog.text
    assert len(midifile.read(tmp_path / "a.mid", drums_only=False).notes) == 16  # drumify hears every rhythm


def test_a_stray_note_on_channel_10_does_not_make_it_the_drum_part(tmp_path, caplog):
    """Ableton exports a drum clip on channel 1: a lone note on 10 beside it is not the groove."""
    _channels_file(tmp_path / "a.mid", {0: [36, 42, 38, 42] * 4, midifile.DRUM_CHANNEL: [49]})
    assert len(midifile.read(tmp_path / "a.mid").notes) == 17
    assert "read channels 1, 10 together as one drum part" in caplog.text


def test_a_far_stray_note_is_refused_and_a_very_slow_file_is_read_and_written_back(tmp_path):
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.Message("note_on", note=36, velocity=90),
                                      mido.Message("note_off", note=36, time=60),
                                      mido.Message("note_on", note=38, velocity=90, time=10**9)]))
    mid.save(tmp_path / "stray.mid")
    with pytest.raises(midifile.MidiFileError, match=r"note at beat 2.08333e\+06; .* up to 8192 beats"):
        midifile.read(tmp_path / "stray.mid")
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=0xFFFFFF),  # 3.576 BPM, rounded
                                      mido.Message("note_on", note=36, velocity=90),
                                      mido.Message("note_off", note=36, time=60)]))
    mid.save(tmp_path / "slow.mid")
    groove = midifile.read(tmp_path / "slow.mid")
    assert groove.tempo == 3.576 and model_tempo(groove.tempo) == 20.0  # the file keeps its own
    midifile.write(tmp_path / "back.mid", groove.notes, groove.tempo, groove.meter, groove.length)
    assert midifile.read(tmp_path / "back.mid").tempo == 3.576


@pytest.mark.parametrize("content,reason", [
    (b"", r"not a readable MIDI file \(\w"),  # never an empty "()"
    (b"RIFF....WAVEfmt ", "not a readable MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\xff\xff", "not a readable MIDI file"),
    # a key signature of 32 sharps: mido refuses it with an error of its own
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x08\x00\xff\x59\x02\x20\x05\x00\xff\x2f\x00",
     "Could not decode key"),
])
def test_corrupt_files_raise_midi_file_error(tmp_path, content, reason):
    path = tmp_path / "x.mid"
    path.write_bytes(content)
    with pytest.raises(midifile.MidiFileError, match=reason):
        midifile.read(path)


@pytest.mark.parametrize("meta,reason", [
    (mido.MetaMessage("set_tempo", tempo=0), "tempo of 0"),
    (mido.MetaMessage("time_signature", numerator=0, denominator=4), "time signature of 0/4"),
])
def test_degenerate_tempo_and_meter_are_refused(tmp_path, meta, reason):
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([meta, mido.Message("note_on", note=36, velocity=90),
                                      mido.Message("note_off", note=36, time=60)]))
    mid.save(tmp_path / "x.mid")
    with pytest.raises(midifile.MidiFileError, match=reason):
        midifile.read(tmp_path / "x.mid")


def test_a_denominator_of_two_to_the_255_is_refused(tmp_path):
    mid = mido.MidiFile()
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=4, denominator=4),
                                      mido.Message("note_on", note=36, velocity=90),
                                      mido.Message("note_off", note=36, time=60)]))
    mid.save(tmp_path / "x.mid")
    raw = (tmp_path / "x.mid").read_bytes()
    at = raw.index(b"\xff\x58\x04") + 3  # the numerator; after it the denominator, as a power of 2
    (tmp_path / "x.mid").write_bytes(raw[: at + 1] + b"\xff" + raw[at + 2 :])
    with pytest.raises(midifile.MidiFileError, match=r"time signature of 4/2\^255"):
        midifile.read(tmp_path / "x.mid")


def test_tempo_changes_are_read_and_written_back_where_they_were(tmp_path):
    notes = [Note(36, float(b), 0.25, 100) for b in range(16)]
    midifile.write(tmp_path / "a.mid", notes, 120.0, (4, 4), 16.0, tempo_changes=((8.0, 90.0), (12.5, 100.0)))
    read = midifile.read(tmp_path / "a.mid")
    assert read.tempo == 120.0 and read.tempo_changes == ((8.0, 90.0), (12.5, 100.0))
    midifile.write(tmp_path / "b.mid", read.notes, read.tempo, read.meter, read.length, tempo_changes=read.tempo_changes)
    seconds = [msg.time for msg in mido.MidiFile(tmp_path / "b.mid")]  # as a player times it
    assert sum(seconds) == pytest.approx(8 * 0.5 + 4.5 * 60 / 90 + 3.5 * 0.6)
    assert midifile.read(tmp_path / "b.mid").tempo_changes == read.tempo_changes
    late = mido.MidiFile(ticks_per_beat=480)  # notes at MIDI's default 120 first, its only tempo at beat 7.5
    late.tracks.append(mido.MidiTrack([m for b in range(16) for m in (
        mido.Message("note_on", note=36, velocity=90, time=0 if b == 0 else 240),
        mido.Message("note_off", note=36, time=240), *([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))]
                                                         if b == 7 else []))]))
    late.save(tmp_path / "late.mid")
    read = midifile.read(tmp_path / "late.mid")
    assert read.tempo == 90.0 and read.tempo_changes == ((0.0, 120.0), (7.5, 90.0))  # heard at 90, kept as played
    midifile.write(tmp_path / "c.mid", read.notes, read.tempo, read.meter, read.length, tempo_changes=read.tempo_changes)

    def onsets(path: Path) -> list[float]:  # seconds, as a player times them
        clock, out = 0.0, []
        for msg in mido.MidiFile(path):
            clock += msg.time
            out += [clock] if msg.type == "note_on" and msg.velocity else []
        return out

    assert onsets(tmp_path / "c.mid") == pytest.approx(onsets(tmp_path / "late.mid"), abs=1e-3)


def test_a_change_of_tempo_or_meter_is_warned_of(tmp_path, caplog):
    def groove(*events: mido.Message) -> midifile.Groove:
        mid = mido.MidiFile(ticks_per_beat=480)
        mid.tracks.append(mido.MidiTrack([*events, mido.Message("note_on", note=36, velocity=90, time=0),
                                          mido.Message("note_off", note=36, time=240)]))
        mid.save(tmp_path / "x.mid")
        return midifile.read(tmp_path / "x.mid")

    kick = (mido.Message("note_on", note=36, velocity=90), mido.Message("note_off", note=36, time=240))
    three = mido.MetaMessage("time_signature", numerator=3)
    slow = mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60))
    assert groove(three, slow, *kick).meter == (3, 4) and not caplog.records  # set before any note: no change
    assert groove(*kick[:1], three, slow, *kick[1:]).tempo == 60 and not caplog.records  # at the first note's tick
    read = groove(*kick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0))  # at beat 0.5
    assert read.tempo == 60 and "changes tempo or meter at beat 0.5" in caplog.text  # the notes before played at 120
    caplog.clear()
    assert groove(three, *kick, mido.MetaMessage("time_signature", numerator=3, time=0)).meter == (3, 4)
    assert not caplog.records  # the same meter again is no change
    assert groove(slow, *kick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))).tempo == 60
    assert "changes tempo or meter at beat 0.5" in caplog.text
    caplog.clear()
    late = groove(*kick, mido.MetaMessage("time_signature", numerator=3, time=2640))  # at beat 6
    assert late.meter == (4, 4) and "changes tempo or meter at beat 6; it is read at its first, 120 BPM in 4/4" \
        in caplog.text  # MIDI's 4/4 until a time signature: the bars played keep their bar lines


def test_an_end_of_track_only_a_held_note_reaches_adds_no_bar(tmp_path):
    """A bar of groove and a crash let ring for 8 beats (or never let go): the end of track at
    the crash's note-off made the clip 2 bars, `continue` went on after an empty bar and `fill`
    filled it. An end of track after every note has ended still keeps its trailing rest."""
    def length(crash_off: list[mido.Message], end: int) -> float:
        mid = mido.MidiFile(ticks_per_beat=480)
        mid.tracks.append(mido.MidiTrack([mido.Message("note_on", channel=9, note=49, velocity=100),
                                          mido.Message("note_on", channel=9, note=36, velocity=90),
                                          mido.Message("note_off", channel=9, note=36, time=240),
                                          mido.Message("note_on", channel=9, note=38, velocity=90, time=240),
                                          mido.Message("note_off", channel=9, note=38, time=240),
                                          *crash_off, mido.MetaMessage("end_of_track", time=end)]))
        mid.save(tmp_path / "x.mid")
        return midifile.read(tmp_path / "x.mid").length

    assert length([mido.Message("note_off", channel=9, note=49, time=3120)], 0) == 4.0  # off at beat 8
    assert length([], 3120) == 4.0  # never let go: closed at the end of track
    assert length([mido.Message("note_off", channel=9, note=49, time=240)], 2880) == 8.0  # a bar of rest after
    crash = [Note(49, 0.0, 8.0, 100), Note(36, 0.0, 0.25, 90)]  # held to the end of our own 2-bar clip
    midifile.write(tmp_path / "ours.mid", crash, 120.0, (4, 4), 8.0)
    assert midifile.read(tmp_path / "ours.mid").length == 8.0
    midifile.write(tmp_path / "hair.mid", [Note(36, 0.0, 0.1, 90), Note(42, 7.999, 0.1, 90)], 120.0, (4, 4), 8.0)
    assert midifile.read(tmp_path / "hair.mid").length == 8.0  # within half a tick of the end: still inside


def test_files_without_notes_and_missing_files_are_refused(tmp_path):
    empty = mido.MidiFile()
    empty.tracks.append(mido.MidiTrack())
    empty.save(tmp_path / "empty.mid")
    with pytest.raises(midifile.MidiFileError, match="holds no notes"):
        midifile.read(tmp_path / "empty.mid")
    with pytest.raises(midifile.MidiFileError, match="no such file"):
        midifile.read(tmp_path / "missing.mid")


def test_a_file_too_big_for_a_groove_is_refused_before_it_is_parsed(tmp_path):
    """mido took 20 s and 670 MB over a 3 MB file of 400,000 notes, only for the read to refuse it."""
    path = tmp_path / "huge.mid"
    path.write_bytes(b"MThd" + b"\x00" * (midifile.MAX_FILE_BYTES + 1))  # never parsed, or it would fail otherwise
    with pytest.raises(midifile.MidiFileError, match=r"huge.mid is 2.0 MB; MidiDrumiGen reads MIDI files of up to 2"):
        midifile.read(path)


def test_a_note_held_to_a_far_end_of_track_ends_with_the_groove(tmp_path):
    """A note-on without its note-off, the track ending 2,000,000 beats later: the note lasted
    that long and every clip op refused the clip (a note's duration must be under 10^6 beats)."""
    mid = mido.MidiFile(ticks_per_beat=1)
    mid.tracks.append(mido.MidiTrack([mido.Message("note_on", channel=9, note=36, velocity=100),
                                      mido.Message("note_on", channel=9, note=38, velocity=90, time=1),
                                      mido.Message("note_off", channel=9, note=38, time=1),
                                      mido.MetaMessage("end_of_track", time=2_000_000)]))
    mid.save(tmp_path / "held.mid")
    groove = midifile.read(tmp_path / "held.mid")
    assert groove.length == 4.0
    assert [(n.pitch, n.start, n.duration) for n in groove.notes] == [(36, 0.0, 4.0), (38, 1.0, 1.0)]


def test_a_held_note_on_the_groove_s_last_tick_keeps_a_length(tmp_path):
    """5 ticks a beat, 5/8: the groove ends at tick 12.5, which rounded to the note's own tick 12
    gave it no length, and the clip was refused."""
    mid = mido.MidiFile(ticks_per_beat=5)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=5, denominator=8),
                                      mido.Message("note_on", channel=9, note=38, velocity=90),
                                      mido.Message("note_off", channel=9, note=38, time=1),
                                      mido.Message("note_on", channel=9, note=36, velocity=100, time=11),
                                      mido.MetaMessage("end_of_track", time=1000)]))
    mid.save(tmp_path / "odd.mid")
    groove = midifile.read(tmp_path / "odd.mid")
    assert groove.length == 2.5
    assert [(n.pitch, n.start) for n in groove.notes] == [(38, 0.0), (36, 2.4)]
    assert groove.notes[1].duration == pytest.approx(0.1)
