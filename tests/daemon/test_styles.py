"""Learned styles: learning on the bundled model, the style folder, refusals, presets and drummers."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import mido
import pytest
import torch

from daemon import checkpoint, cli, kit, styles
from daemon.anchors import Anchors
from daemon.generate import Generator, GrooveRequest
from daemon.vocab import DRUMMERS, GENRES
from shared.notes import Note
from shared.protocol import LEARN_STEPS_RANGE, STYLE_STRENGTH
from tests.support import GROOVE_MINI, techno_clip

FILES = [GROOVE_MINI / p for p in (
    "drummer7/session1/18_hiphop_100_beat_4-4.mid",
    "drummer7/session2/33_rock_75_beat_4-4.mid",
    "drummer7/session2/79_funk_100_beat_4-4.mid",
    "drummer9/session1/7_rock_100_beat_4-4.mid",
)]
STEPS = 6


@pytest.fixture(autouse=True)
def cheap_learning(monkeypatch):
    """A smaller look at the grooves when picking the base and judging the result: same code, seconds."""
    monkeypatch.setattr(styles, "SCAN_WINDOWS", 8)
    monkeypatch.setattr(styles, "EVAL_WINDOWS", 16)


@pytest.fixture(scope="module")
def bundled():
    model, vocab, _ = checkpoint.load(checkpoint.BUNDLED)
    return model, vocab


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    seen = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(styles, "SCAN_WINDOWS", 8)
        mp.setattr(styles, "EVAL_WINDOWS", 16)
        style = styles.learn_style("My-Groove", FILES, steps=STEPS, progress=lambda *a: seen.append(a), folder=folder)
    return style, folder, seen


def test_learned_style_is_saved_and_survives_a_restart(learned, bundled):
    style, folder, seen = learned
    model, vocab = bundled
    assert style.name == "my-groove" and style.base in GENRES and style.drummer in (None, *DRUMMERS)
    total = len(GENRES) + 1 + len(DRUMMERS) + STEPS + 2  # candidates scanned, steps, before/after
    assert seen == [(i, total) for i in range(1, total + 1)]
    assert [p.name for p in folder.iterdir()] == ["my-groove.json"]  # no temporary file left behind
    saved = json.loads((folder / "my-groove.json").read_text())
    assert saved["sources"] == [f.name for f in FILES]
    assert saved["checkpoint"] == {"file": checkpoint.BUNDLED.name, "tok_emb_sha256": styles.fingerprint(model.tok_emb.weight)}
    assert set(saved["template"]["offsets"]) == set(kit.GROUPS)

    fresh = styles.StyleLibrary(folder)  # as a restarted daemon sees it
    assert fresh.list() == ["my-groove"]
    assert fresh.load("my-groove").to_json() == style.to_json()
    resolved = styles.resolve("my-groove", vocab, model, folder)
    assert resolved.weights == {vocab.ids[t]: w for t, w in style.weights.items()}
    assert resolved.drummer == style.drummer
    assert resolved.template.to_json() == style.template.to_json()
    assert "my-groove" in styles.all_names(folder)


def test_a_learned_style_plays_its_grooves_density_and_complexity_where_a_request_leaves_them_open(
        learned, bundled, monkeypatch, tmp_path):
    """Learning fits the vector with density and complexity open, and so it played: a jazz style
    from takes of 9.5 hits a bar played 15.3. The grooves' levels are measured as training labels
    a window (data.levels_of, over the bars that play) and stored; a request's own still win, and a
    style file from before has none and leaves them open."""
    style, folder, _ = learned
    model, vocab = bundled
    hits = []
    for f in FILES:
        groove = styles.read_groove(f)
        per_bar = {}
        for n in groove.notes:
            per_bar.setdefault(int(n.start // 4), set()).add((n.pitch, round(n.start * 24)))
        hits += [len(b) for b in per_bar.values()]
    assert style.levels == (vocab.level(sum(hits) / len(hits), "density"), style.levels[1])  # counted apart
    assert json.loads((folder / "my-groove.json").read_text())["levels"] == dict(zip(("density", "complexity"),
                                                                                    style.levels))
    shutil.copytree(folder, tmp_path / "lib")
    monkeypatch.setenv(styles.FOLDER_ENV, str(tmp_path / "lib"))
    generator = Generator.load(checkpoint.BUNDLED, "cpu")
    open_ = generator.conditions(GrooveRequest(style="my-groove"))
    assert (open_.density, open_.complexity) == style.levels
    mixed = generator.conditions(GrooveRequest(style={"my-groove": 0.7, "funk": 0.3}))
    assert (mixed.density, mixed.complexity) == style.levels  # the heaviest part lends them
    asked = generator.conditions(GrooveRequest(style="my-groove", density=1.0, complexity=0.0))
    assert (asked.density, asked.complexity) == (4, 0)
    older = json.loads((folder / "my-groove.json").read_text())
    del older["levels"]
    (tmp_path / "lib" / "older.json").write_text(json.dumps({**older, "name": "older"}))
    before = generator.conditions(GrooveRequest(style="older"))
    assert (before.density, before.complexity) == (None, None)


def test_learned_weights_move_off_the_base_and_fit_the_grooves_better(learned, bundled):
    style, folder, _ = learned
    model, vocab = bundled
    base = {f"genre_{style.base}": 1.0}
    assert style.weights != base
    assert sum(abs(w - base.get(t, 0.0)) for t, w in style.weights.items()) > 0.05
    assert set(style.weights) <= {vocab.names[i] for i in styles.support(vocab)}

    sequences = [w for f in FILES for w in styles.windows(styles.read_groove(f), vocab)]
    drummer = vocab.slot_id("drummer", style.drummer)
    vector = torch.zeros(len(vocab))
    for token, w in styles.resolve("my-groove", vocab, model, folder).weights.items():
        vector[token] = w
    start = styles.one_hot(vocab, vocab.slot_id("genre", style.base))
    assert styles.nll(model, vector, sequences, drummer, vocab.pad) < styles.nll(model, start, sequences, drummer, vocab.pad)
    assert style.fit["loss_style"] < style.fit["loss_base"]


def test_library_rename_export_import_delete(learned, tmp_path):
    _, source, _ = learned
    folder = tmp_path / "lib"
    shutil.copytree(source, folder)
    library = styles.StyleLibrary(folder)
    library.rename("my-groove", "Late Night".replace(" ", "-"))
    assert library.list() == ["late-night"]
    with pytest.raises(styles.StyleError, match="built-in"):
        library.rename("late-night", "funk")
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    with pytest.raises(styles.StyleError, match="is not a regular file"):  # a rename over it would replace it
        library.export("late-night", pipe)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    exported = library.export("late-night", tmp_path)
    assert exported == tmp_path / "late-night.json"
    assert exported.stat().st_mode & 0o777 == 0o666 & ~styles._UMASK  # shareable, as the umask allows
    assert library.export("late-night", f"{tmp_path}/new/") == tmp_path / "new" / "late-night.json"
    from daemon.cli import build_parser
    assert build_parser().parse_args(["style", "export", "late-night", "out/"]).path == "out/"  # the slash reaches export
    with pytest.raises(styles.StyleError, match="already a style"):
        library.import_(exported)
    library.delete("late-night")
    assert library.list() == []
    with pytest.raises(KeyError, match="no style named"):
        library.load("late-night")
    assert library.import_(exported).name == "late-night"
    assert library.import_(exported, name="copy").name == "copy"
    assert library.list() == ["copy", "late-night"]
    assert library.load("copy").weights == library.load("late-night").weights
    groove = tmp_path / "groove.mid"
    groove.write_bytes(b"MThd")
    with pytest.raises(styles.StyleError, match=r"exported as a \.json file"):  # the JSON replaced the groove
        library.export("copy", groove)
    assert groove.read_bytes() == b"MThd"
    edited = json.loads(exported.read_text())
    edited["weights"]["genre_polka"] = 1.0
    (tmp_path / "polka.json").write_text(json.dumps(edited))
    with pytest.raises(styles.StyleError, match="uses tokens this model lacks"):  # listed as fine, then refused
        library.import_(tmp_path / "polka.json", name="polka", vocab=Generator.load(checkpoint.BUNDLED).vocab)
    assert library.list() == ["copy", "late-night"]
    edited = json.loads(exported.read_text())
    edited["base"] = "polka"  # humanize plays a learned style in its base genre's feel
    (tmp_path / "polka.json").write_text(json.dumps(edited))
    with pytest.raises(styles.StyleError, match="damaged.*unknown base genre 'polka'"):
        library.import_(tmp_path / "polka.json", name="polka")


def test_a_damaged_style_file_does_not_hide_the_others(learned, tmp_path):
    _, source, _ = learned
    folder = tmp_path / "lib"
    shutil.copytree(source, folder)
    (folder / "broken.json").write_text('{"format": "mididrumigen-style", "version": 1, "name": ')
    (folder / "empty.json").write_text(json.dumps({"format": "mididrumigen-style", "version": 1, "name": "empty"}))
    huge = json.loads((folder / "my-groove.json").read_text())
    huge["name"], huge["weights"] = "huge", {name: 1e308 for name in huge["weights"]}  # embeddings would overflow
    (folder / "huge.json").write_text(json.dumps(huge))
    library = styles.StyleLibrary(folder)
    assert library.list() == ["broken", "empty", "huge", "my-groove"]
    with pytest.raises(styles.StyleError, match="damaged"):
        library.load("broken")
    with pytest.raises(styles.StyleError, match="damaged"):
        library.load("empty")
    with pytest.raises(styles.StyleError, match="beyond ±100"):
        library.load("huge")
    for weight, good in ((-styles.WEIGHT_LIMIT, True), (styles.WEIGHT_LIMIT * 1.01, False)):
        huge["weights"] = dict.fromkeys(huge["weights"], weight)
        (folder / "huge.json").write_text(json.dumps(huge))
        if good:
            assert library.load("huge").weights[next(iter(huge["weights"]))] == weight
        else:
            with pytest.raises(styles.StyleError, match="beyond"):
                library.load("huge")
    assert 1 + styles.LR * LEARN_STEPS_RANGE[1] < styles.WEIGHT_LIMIT / 4  # learning stays far inside the limit
    assert library.load("my-groove").name == "my-groove"
    assert "broken" not in styles.all_names(folder) and "my-groove" in styles.all_names(folder)


@pytest.mark.parametrize("offset", [float("nan"), float("inf"), True, 3.0, "0.1"])
def test_a_template_with_impossible_numbers_is_a_damaged_file(learned, tmp_path, offset):
    """NaN offsets once imported cleanly and broke every groove of the style with a note error."""
    _, source, _ = learned
    data = json.loads((source / "my-groove.json").read_text())
    data["name"] = "odd"
    data["template"]["offsets"] = {group: [offset] * len(steps) for group, steps in data["template"]["offsets"].items()}
    (tmp_path / "odd.json").write_text(json.dumps(data))
    library = styles.StyleLibrary(tmp_path / "lib")
    with pytest.raises(styles.StyleError, match="offsets within a 16th"):
        library.import_(tmp_path / "odd.json")
    assert library.list() == []


@pytest.mark.parametrize("anchors, message", [
    ({"meter": [4, 4], "hits": [[2, 42], [2, 46]]}, "cannot play at once"),  # two hi-hat states on one 16th
    ({"meter": [4, 4], "hits": [[16, 36]]}, "not a 16th"), ({"meter": [4, 4], "hits": [[0, 20]]}, "a drum of the kit"),
    ({"meter": "4/4", "hits": []}, "not a meter"),
])
def test_anchors_no_drummer_could_play_are_a_damaged_file(learned, tmp_path, anchors, message):
    """Refused when imported, rather than sampled into a dead end or an error every groove."""
    _, source, _ = learned
    data = json.loads((source / "my-groove.json").read_text())
    data["name"], data["anchors"] = "odd", anchors
    (tmp_path / "odd.json").write_text(json.dumps(data))
    library = styles.StyleLibrary(tmp_path / "lib")
    with pytest.raises(styles.StyleError, match=message):
        library.import_(tmp_path / "odd.json")
    assert library.list() == []
    data["anchors"] = {"meter": [4, 4], "hits": [[0, 36], [8, 36]]}  # a hand-written pair is fine
    (tmp_path / "odd.json").write_text(json.dumps(data))
    assert library.import_(tmp_path / "odd.json").anchors.positions((4, 4)) == ((0, 36), (48, 36))


def _write_midi(path: Path, pitches: list[int]) -> Path:
    track = mido.MidiTrack()
    for p in pitches:
        track.append(mido.Message("note_on", note=p, velocity=90, time=120))
        track.append(mido.Message("note_off", note=p, velocity=0, time=120))
    mid = mido.MidiFile()
    mid.tracks.append(track)
    mid.save(path)
    return path


@pytest.mark.parametrize("case", ["no files", "corrupt", "two grooves", "one groove thrice", "no drums", "a scale",
                                  "built-in name", "drummer name", "a genre spelt otherwise", "odd name",
                                  "taken name"])
def test_bad_input_is_refused_clearly_and_writes_nothing(case, tmp_path, learned):
    folder = tmp_path / "lib"
    files, name = list(FILES[:3]), "fine"
    if case == "no files":
        files, message = [], "no MIDI files"
    elif case == "corrupt":
        bad = tmp_path / "bad.mid"
        bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
        files, message = [bad, *FILES[:2]], r"at least 3 grooves.*bad\.mid is not a readable MIDI file"
    elif case == "two grooves":
        files, message = FILES[:2], "at least 3 grooves with drum notes, got 2"
    elif case == "one groove thrice":  # the same file, and a path to it that reads differently
        files, message = ([FILES[0], FILES[0], FILES[0].parent / ".." / FILES[0].parent.name / FILES[0].name],
                          "got 1; skipped: 2 files repeating another groove, counted once")
    elif case == "no drums":
        files, message = [_write_midi(tmp_path / "piano.mid", [72, 76, 79]), *FILES[:2]], "piano.mid has no drum notes"
    elif case == "a scale":  # its 60 is a drum pitch (hi bongo): the scale was learned as a style
        files, message = ([_write_midi(tmp_path / "scale.mid", [60, 62, 64, 65, 67, 69, 71, 72]), *FILES[:2]],
                          "scale.mid is mostly not drums: 1 of its 8 notes")
    elif case == "built-in name":
        name, message = "Funk", "'funk' is a built-in style"
    elif case == "drummer name":
        name, message = "drummer3", "built-in style"
    elif case == "a genre spelt otherwise":  # asked for, "hip-hop" is hiphop: a style so named could not be
        name, message = "hip-hop", "'hip-hop' is a built-in style"
    elif case == "odd name":
        name, message = "../evil", "won't do"
    else:
        shutil.copytree(learned[1], folder)
        name, message = "my-groove", "already a style named"
    before = sorted(folder.rglob("*")) if folder.exists() else []
    with pytest.raises(styles.StyleError, match=message):
        styles.learn_style(name, files, steps=1, folder=folder)
    assert (sorted(folder.rglob("*")) if folder.exists() else []) == before


def test_clips_from_live_learn_a_style(tmp_path):
    from daemon import midifile

    clips = []
    for f in FILES[:3]:
        groove = midifile.read(f)
        clips.append(([n for n in groove.notes if n.start < 4.0], groove.tempo, groove.meter, 4.0))  # one-bar clips
    style = styles.learn_style_from_clips("live-set", clips, steps=1, folder=tmp_path)
    assert style.sources == ["clip 1", "clip 2", "clip 3"]
    assert styles.StyleLibrary(tmp_path).list() == ["live-set"]
    with pytest.raises(styles.StyleError, match="clip 2 has no drum notes"):
        styles.learn_style_from_clips("x", [clips[0], ([Note(80, 0.0, 0.25, 100)], 120.0, (4, 4), 4.0), clips[2]],
                                      folder=tmp_path)
    reordered = (list(reversed(clips[0][0])), *clips[0][1:])  # the same clip, its notes in another order
    with pytest.raises(styles.StyleError, match="clip 2 repeats another clip, counted once"):
        styles.learn_style_from_clips("x", [clips[0], reordered, clips[0]], folder=tmp_path)  # as files are


def test_a_style_folder_that_cannot_be_written_is_found_before_learning(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(checkpoint, "load", lambda *args: pytest.fail("learned before finding it cannot save"))
    with pytest.raises(styles.StyleError, match="cannot save styles in .*a-file/styles: Not a directory"):
        styles.learn_style("x", FILES[:3], steps=1, folder=tmp_path / "a-file" / "styles")


def test_a_disk_that_fills_while_a_style_is_saved_is_said_so_and_leaves_nothing(learned, tmp_path, monkeypatch):
    """Found after the learning, it was a traceback (the daemon's `internal`, "a bug")."""
    library = styles.StyleLibrary(tmp_path)
    style = styles.Style.from_json({**learned[0].to_json(), "name": "full"}, "test")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(styles.StyleError, match=r"cannot write .*full\.json: No space left on device"):
        library.save(style)
    assert list(tmp_path.iterdir()) == []


def test_presets_drummers_and_genres_resolve(bundled, tmp_path):
    model, vocab = bundled
    for name, preset in styles.PRESETS.items():
        weights, drummer, template, genres, levels, anchors = resolved = styles.resolve(name, vocab)
        assert drummer is None and levels is None and abs(sum(weights.values()) - 1.0) < 1e-9
        assert anchors is preset.anchors
        assert {vocab.names[i] for i in weights} == {f"genre_{g}" for g in preset.mix}
        assert template is preset.template and genres.keys() == preset.mix.keys()  # humanize hears the blend
        assert resolved.feel in preset.mix
    assert styles.resolve("drummer3", vocab) == ({vocab.slot_id("genre", None): 1.0}, "drummer3", None, None, None,
                                                 None)
    assert styles.resolve("Jazz", vocab) == ({vocab.slot_id("genre", "jazz"): 1.0}, None, None, {"jazz": 1.0}, None,
                                             None)
    # a mix's feel is its strongest genre as mixed: the preset's jazz counts with the jazz named beside it
    assert styles.resolve_mix({"laid-back-hiphop": 0.6, "jazz": 0.5}, vocab).feel == "jazz"
    assert styles.resolve("shuffle-blues", vocab).feel == "rock"  # half blues, half rock: GENRES' order decides
    mix = styles.resolve_mix({"funk": 3.0, "drummer5": 1.0}, vocab)
    assert mix.weights == {vocab.slot_id("genre", "funk"): 0.75, vocab.slot_id("genre", None): 0.25}
    assert mix.drummer == "drummer5" and mix.template is None and mix.feel == "funk"
    swung = styles.resolve_mix({"funk": 1.0, "drummer5": 1.0, "shuffle-blues": 2.0}, vocab)
    assert swung.drummer == "drummer5" and swung.template is styles.PRESETS["shuffle-blues"].template
    tied = styles.resolve_mix({"drummer4": 1.0, "shuffle-blues": 1.0}, vocab)
    assert tied.drummer == "drummer4" and tied.template is None  # a tie: the first named leads
    tied = styles.resolve_mix({"shuffle-blues": 1.0, "drummer4": 1.0}, vocab)
    assert tied.drummer == "drummer4" and tied.template is styles.PRESETS["shuffle-blues"].template
    assert styles.resolve_mix({"funk": 1.0, "drummer3": 0.0}, vocab) == ({vocab.slot_id("genre", "funk"): 1.0}, None,
                                                                          None, {"funk": 1.0}, None, None)
    assert styles.resolve_mix({"house": 2.0, "funk": 1.0}, vocab).anchors is styles.PRESETS["house"].anchors
    assert styles.resolve_mix({"house": 1.0, "funk": 2.0}, vocab).anchors is None  # the heaviest lends them
    with pytest.raises(KeyError):
        styles.resolve("no-such-style", vocab, folder=tmp_path)
    names = styles.all_names(tmp_path)
    assert names == [*GENRES, *styles.PRESETS, *DRUMMERS]


def test_gmd_styles_lean_in_and_learned_styles_play_as_learned(learned):
    """Each part of a style leans in by its own default: a genre or preset by STYLE_STRENGTH, a
    learned style by 1 (learning fitted it there), alone or in a mix; a request's strength
    applies to every part."""
    style, folder, _ = learned
    g = Generator.load(checkpoint.BUNDLED, "cpu", style_folder=folder)
    any_genre, funk = g.vocab.slot_base["genre"], g.vocab.slot_id("genre", "funk")
    mine = styles.resolve("my-groove", g.vocab, g.model, folder).weights
    assert g.voice("my-groove").blend == mine
    half = {t: w / 2 for t, w in mine.items()}
    expected = {**half, funk: half.get(funk, 0.0) + STYLE_STRENGTH / 2,
                any_genre: half.get(any_genre, 0.0) + (1 - STYLE_STRENGTH) / 2}
    assert g.voice({"my-groove": 1, "funk": 1}).blend == pytest.approx(expected)
    assert g.voice("my-groove", 2.0).blend == pytest.approx(styles.push(mine, 2.0, any_genre))
    as_learned, at_one, pushed = g.generate([GrooveRequest(style="my-groove", bars=2, seed=4, strength=s)
                                             for s in (None, 1.0, 2.0)])
    assert as_learned[0].notes == at_one[0].notes != pushed[0].notes


def test_a_style_learned_on_another_model_is_refused(learned, bundled, tmp_path):
    style, folder, _ = learned
    model, vocab = bundled
    other = type(model)(model.config)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.tok_emb.weight.add_(1e-3)  # a retrained model: the same tokens, other embeddings
    path = tmp_path / "other.pt"
    checkpoint.save(path, other, vocab, {})
    reloaded, vocab2, _ = checkpoint.load(path)
    with pytest.raises(styles.StyleError, match="learned on another model.*style learn my-groove FILES --replace"):
        styles.resolve("my-groove", vocab2, reloaded, folder)
    assert styles.resolve("my-groove", vocab, model, folder).weights  # the right model still takes it


def test_cli_actions_return_exit_codes_and_one_clear_line(learned, tmp_path, monkeypatch, capsys):
    _, source, _ = learned
    shutil.copytree(source, tmp_path / "lib")
    monkeypatch.setenv(styles.FOLDER_ENV, str(tmp_path / "lib"))

    def run(*argv: str) -> int:
        return cli.main(["style", *argv])

    assert run("list") == 0
    out = capsys.readouterr().out
    assert "my-groove" in out and "laid-back-hiphop" in out and "drummer10" in out
    assert run("rename", "my-groove", "other") == 0
    assert run("export", "other", str(tmp_path)) == 0 and (tmp_path / "other.json").is_file()
    assert run("delete", "other") == 0
    assert run("delete", "other") == 1
    assert capsys.readouterr().err.strip().splitlines() == ["drumigen: no style named 'other'; `drumigen style list` shows them"]
    assert run("import", str(tmp_path / "other.json")) == 0
    assert run("learn", "other", *map(str, FILES)) == 1
    assert "already a style named 'other'; choose another name or replace it (`--replace`" in capsys.readouterr().err
    assert run("learn", "two", *map(str, FILES[:2])) == 1
    assert "at least 3 grooves" in capsys.readouterr().err
    nested = tmp_path / "takes" / "session1"  # a dataset's layout: drummer/session/take.mid
    nested.mkdir(parents=True)
    for f in FILES[:2]:
        shutil.copy(f, nested / f.name)
    assert run("learn", "two", str(tmp_path / "takes")) == 1
    assert "at least 3 grooves" in capsys.readouterr().err  # found the 2 takes, not "no MIDI files given"
    assert styles.StyleLibrary().list() == ["other"]


def test_learning_from_what_is_not_drums_says_so(tmp_path, monkeypatch, capsys):
    """A song's piano and bass read as drums (their pitches fall in the drum range) were learned
    without a word; the loss said it (5.7 nats a token against GMD's 2.75)."""
    monkeypatch.setenv(styles.FOLDER_ENV, str(tmp_path / "lib"))
    monkeypatch.setattr(styles, "SCAN_WINDOWS", 8)
    monkeypatch.setattr(styles, "EVAL_WINDOWS", 8)
    songs = []
    for k in range(3):
        track = mido.MidiTrack()
        for i in range(64):  # a walking line and chords on channel 1, all within GM 35-60
            for pitch in ((36 + (i * 5 + k) % 24,) if i % 2 else (48 + i % 7, 52 + i % 5, 55 + i % 3)):
                track.append(mido.Message("note_on", channel=0, note=pitch, velocity=80, time=0))
            for j, pitch in enumerate((36 + (i * 5 + k) % 24,) if i % 2 else (48 + i % 7, 52 + i % 5, 55 + i % 3)):
                track.append(mido.Message("note_off", channel=0, note=pitch, time=240 if j == 0 else 0))
        mid = mido.MidiFile(ticks_per_beat=480)
        mid.tracks.append(track)
        mid.save(tmp_path / f"song{k}.mid")
        songs.append(str(tmp_path / f"song{k}.mid"))
    assert cli.main(["style", "learn", "piano", *songs, "--steps", "1"]) == 0
    assert "unlike any drums it knows" in capsys.readouterr().out
    assert cli.main(["style", "learn", "drums", *map(str, FILES), "--steps", "1"]) == 0
    assert "unlike any drums" not in capsys.readouterr().out


def test_grooves_played_on_a_rack_of_ones_own_are_learned_through_its_kit(tmp_path, monkeypatch, capsys):
    """`style learn` had no --kit: grooves recorded on a Drum Rack's own pads were not drums to it."""
    from daemon import midifile

    monkeypatch.setenv(styles.FOLDER_ENV, str(tmp_path / "lib"))
    monkeypatch.setattr(styles, "SCAN_WINDOWS", 8)
    monkeypatch.setattr(styles, "EVAL_WINDOWS", 8)
    rack = {36: 70, 38: 71, 42: 72, 22: 72}  # kick, snare and hats on pads 70-72 (the hat's edge zone too)
    files = []
    for f in FILES[:3]:
        groove = midifile.read(f)
        notes = [n for n in groove.notes if n.pitch in rack]
        midifile.write(tmp_path / f.name, [replace(n, pitch=rack[n.pitch]) for n in notes], groove.tempo, groove.meter)
        files.append(str(tmp_path / f.name))
    (tmp_path / "rack.json").write_text(json.dumps({"36": 70, "38": 71, "42": 72}))
    assert cli.main(["style", "learn", "racked", *files, "--steps", "1"]) == 1
    assert "no drum notes" in capsys.readouterr().err
    assert cli.main(["style", "learn", "racked", *files, "--steps", "1", "--kit", str(tmp_path / "rack.json")]) == 0
    assert "learned style 'racked' from 3 grooves" in capsys.readouterr().out


def test_style_learn_hears_a_files_crash_49_as_gm_plays_it_unless_told_otherwise(tmp_path, monkeypatch, capsys):
    """Its help says gm is the default; it read files in the TD-11's layout, where 49 is the
    crash's soft bow, not the crash a GM file means by it."""
    monkeypatch.setenv(styles.FOLDER_ENV, str(tmp_path / "lib"))
    monkeypatch.setattr(styles, "SCAN_WINDOWS", 8)
    monkeypatch.setattr(styles, "EVAL_WINDOWS", 8)
    heard, read = [], styles.read_groove
    monkeypatch.setattr(styles, "read_groove", lambda path, kit_map=None: heard.append(
        kit.heard_as(kit_map or {})(49)) or read(path, kit_map))
    files = [str(f) for f in FILES[:3]]
    assert cli.main(["style", "learn", "gm-files", *files, "--steps", "1"]) == 0
    assert cli.main(["style", "learn", "td11-files", *files, "--steps", "1", "--kit", "gmd"]) == 0
    assert heard == [55] * 3 + [49] * 3
    capsys.readouterr()


def test_a_file_is_read_for_learning_as_every_file_command_reads_it(tmp_path):
    """A drum clip exported on channel 1 beside a stray crash on 10: all 17 hits, as `show` reads it."""
    from daemon import midifile

    track = mido.MidiTrack()
    for i, (channel, pitch) in enumerate([(0, p) for p in [36, 42, 38, 42] * 4] + [(9, 49)]):
        track += [mido.Message("note_on", channel=channel, note=pitch, velocity=90, time=0 if i == 0 else 60),
                  mido.Message("note_off", channel=channel, note=pitch, time=60)]
    mid = mido.MidiFile(ticks_per_beat=240)
    mid.tracks.append(track)
    mid.save(tmp_path / "clip.mid")
    groove = styles.read_groove(tmp_path / "clip.mid")
    assert len(groove.notes) == len(midifile.read(tmp_path / "clip.mid").notes) == 17


def test_presets_play_new_beats_on_the_one():
    generator = Generator.load(checkpoint.BUNDLED, "cpu")
    for name in styles.PRESETS:
        for seed in range(6):
            notes = generator.generate([GrooveRequest(style=name, bars=4, seed=seed)])[0][0].notes
            assert min(n.start for n in notes) == 0.0, (name, seed)


def test_a_style_of_another_model_is_neither_imported_nor_offered(learned, bundled, tmp_path, monkeypatch, capsys):
    """The daemon's `styles` list is every name `style` takes: one that generate would refuse is
    not on it. Importing such a file is refused with what to do, not accepted to fail later."""
    _, source, _ = learned
    model, vocab = bundled
    foreign = json.loads((source / "my-groove.json").read_text())
    foreign["name"], foreign["checkpoint"]["tok_emb_sha256"] = "foreign", "0" * 16
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    monkeypatch.setenv("MIDIDRUMIGEN_STYLES", str(tmp_path / "lib"))
    assert cli.main(["style", "import", str(tmp_path / "foreign.json")]) == 1
    assert "was learned on another model" in capsys.readouterr().err and not (tmp_path / "lib" / "foreign.json").exists()
    shutil.copytree(source, tmp_path / "both")
    shutil.copy(tmp_path / "foreign.json", tmp_path / "both" / "foreign.json")
    assert "foreign" in styles.all_names(tmp_path / "both")  # it loads
    offered = styles.all_names(tmp_path / "both", model, vocab)
    assert "foreign" not in offered and "my-groove" in offered


def test_every_command_that_reads_styles_takes_the_folder_serve_does(learned, tmp_path, monkeypatch, capsys):
    """`serve --styles DIR` saw styles a `style learn` could not write there, nor `--local` read."""
    _, source, _ = learned
    shutil.copytree(source, tmp_path / "mine")
    monkeypatch.setenv("MIDIDRUMIGEN_STYLES", str(tmp_path / "elsewhere"))
    assert cli.main(["style", "list", "--styles", str(tmp_path / "mine")]) == 0
    assert "my-groove" in capsys.readouterr().out
    assert cli.main(["generate", "--local", "--style", "my-groove", "--styles", str(tmp_path / "mine"), "--bars", "1",
                     "--seed", "1", "-q"]) == 0
    assert cli.main(["style", "rename", "my-groove", "ours", "--styles", str(tmp_path / "mine")]) == 0
    assert styles.StyleLibrary(tmp_path / "mine").list() == ["ours"] and not (tmp_path / "elsewhere").exists()


def test_a_clip_shorter_than_a_bar_is_learned_looped_as_live_plays_it():
    half = styles.groove_from_notes("half", [Note(36, 0.0, 0.1, 100), Note(38, 1.0, 0.1, 100)], 100.0, (4, 4), 2.0)
    assert half.bars == 1 and [(n.pitch, n.start) for n in half.notes] == [(36, 0.0), (38, 1.0), (36, 2.0), (38, 3.0)]


def test_copies_of_one_groove_are_one_groove(tmp_path):
    """Three copies of one file at three paths once made the three grooves a style needs."""
    copies = []
    for i in range(3):
        copies.append(tmp_path / f"copy{i}.mid")
        shutil.copy(FILES[0], copies[-1])
    with pytest.raises(styles.StyleError, match="3"):
        styles.learn_style("copies", copies, steps=1, folder=tmp_path / "lib")


def test_claps_a_kick_on_35_and_shakers_are_learned_as_the_drums_they_play():
    """Four techno clips with claps on 2 and 4 learned as reggae, a kick on every beat in 14 % of
    its bars against the clips' 100 %: the model never met a clap in GMD. They are learned as
    their snare, kick and hats, as the same clips in GM's kit would be; a shaker beside a kick is
    a drum, and a melody in the shakers' range is still not."""
    house = [Note(p, b / 4, 0.1, 100) for b in range(16) for p in ([36] if b % 4 == 0 else []) +
             ([38] if b % 8 == 4 else []) + [42]]
    ours = [replace(n, pitch={36: 35, 38: 39, 42: 70}[n.pitch]) for n in house]
    assert styles.groove_from_notes("ours", ours, 124.0, (4, 4)).notes == \
        styles.groove_from_notes("gm", house, 124.0, (4, 4)).notes
    with_shaker = house + [replace(n, pitch=70) for n in house if n.pitch == 42]  # doubling the hats: not refused
    assert styles.groove_from_notes("shaker", with_shaker, 124.0, (4, 4)).notes == \
        styles.groove_from_notes("gm", house, 124.0, (4, 4)).notes
    melody = [Note(p, i / 2, 0.4, 90) for i, p in enumerate([67, 69, 70, 72, 74, 76, 77, 79])]
    with pytest.raises(styles.StyleError, match="has no drum notes"):
        styles.groove_from_notes("melody", melody, 124.0, (4, 4))
    layered = house + [replace(n, pitch=39, velocity=120) for n in house if n.pitch == 38]  # one snare hit, the louder
    assert styles.groove_from_notes("layered", layered, 124.0, (4, 4)).notes == \
        [replace(n, velocity=120) if n.pitch == 38 else n for n in styles.groove_from_notes("gm", house, 124.0, (4, 4)).notes]


def kept(notes: list[Note], anchors, meter=(4, 4), bars=4) -> float:
    """The share of (bar, anchor) pairs played: its piece within an 8th of a beat of its 16th (the
    grammar keeps it on the 16th or a hair early; the style's groove template then moves the
    piece's mean timing there)."""
    per_bar = meter[0] * 4 / meter[1]
    wanted = [(b * per_bar + position / (24 * meter[1] / 4), pitch) for b in range(bars) for position, pitch in anchors]
    return sum(any(n.pitch == pitch and abs(n.start - at) <= 1 / 8 for n in notes)
               for at, pitch in wanted) / len(wanted)


def test_a_style_learned_from_techno_clips_keeps_what_they_play_in_every_bar(tmp_path):
    """Learned as a vector alone, such clips played back a kick on every beat in half the bars
    and 3.3 rides a bar they never play (docs/styles.md); their constant parts are now kept."""
    clips = [techno_clip(clap=v % 2 == 1, crash=v == 4) for v in range(5)]
    style = styles.learn_style_from_clips("techno", clips, steps=STEPS, folder=tmp_path)
    kicks, claps = [(s, 36) for s in (0, 4, 8, 12)], [(4, 38), (12, 38)]  # claps heard as the snare they play
    hats = [(s, 46 if s % 4 == 2 else 42) for s in range(16)]
    assert style.anchors == Anchors((4, 4), tuple(sorted(kicks + claps + hats)))
    assert styles.StyleLibrary(tmp_path).load("techno").anchors == style.anchors  # stored with the style
    generator = Generator.load(checkpoint.BUNDLED, "cpu", style_folder=tmp_path)
    anchors = style.anchors.positions((4, 4))
    for pattern in generator.generate([GrooveRequest(style="techno", bars=4, variations=4, seed=3, tempo=125)])[0]:
        assert kept(pattern.notes, anchors) == 1.0
        assert not {n.pitch for n in pattern.notes} & {51, 53, 59}  # no ride where the clips have none
    fill, = generator._rows([GrooveRequest(style="techno", bars=1, kind="fill", seed=3)])
    assert fill.state.anchors == ()  # a fill is free to leave the pattern
    cymbals, = generator._rows([GrooveRequest(style="techno", bars=1, seed=3, pieces=(42, 46, 51))])
    assert {pitch for _, pitch in cymbals.state.anchors} == {42, 46}  # a line of its own kit keeps its own


@pytest.mark.parametrize("meter", [(4, 4), (3, 4), (6, 8), (7, 8), (5, 4)])
def test_four_on_the_floor_presets_keep_a_kick_on_every_beat(meter):
    """The blends alone put a kick on every beat of 20-34 % of 4/4 bars (docs/styles.md)."""
    generator = Generator.load(checkpoint.BUNDLED, "cpu")
    for name in ("house", "disco-funk"):
        anchors = styles.PRESETS[name].anchors.positions(meter)
        for pattern in generator.generate([GrooveRequest(style=name, bars=4, variations=3, seed=5, meter=meter)])[0]:
            assert kept(pattern.notes, anchors, meter) == 1.0, (name, meter)


def test_style_learn_says_what_the_grooves_play_in_every_bar(tmp_path, monkeypatch, capsys):
    from daemon import midifile

    for v in range(3):
        notes, tempo, meter, length = techno_clip(clap=v == 1, crash=v == 2)
        midifile.write(tmp_path / f"techno{v}.mid", notes, tempo, meter, length)
    monkeypatch.setenv(styles.FOLDER_ENV, str(tmp_path / "lib"))
    assert cli.main(["style", "learn", "techno", *(str(tmp_path / f"techno{v}.mid") for v in range(3)),
                     "--steps", "1"]) == 0
    assert ("plays in every bar of 4/4, as your grooves do: kick on 1 2 3 4; closed hat on 1 1e 1a 2 2e 2a 3 3e 3a "
            "4 4e 4a; open hat on 1& 2& 3& 4&; snare on 2 4") in capsys.readouterr().out
