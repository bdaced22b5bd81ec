"""Training end to end on real GMD files, small enough for CI: it learns, saves, resumes, repeats."""

from __future__ import annotations

import csv
import hashlib
import math
import shutil
import subprocess
from collections import Counter
from dataclasses import replace

import pytest
import torch

from daemon import checkpoint
from daemon.cli import build_parser
from daemon.data import REBAR_METERS, WindowSampler, evaluation_windows, load_dataset, rebar, rebar_tempo, \
    replayed_bars
from daemon.grammar import BarState, TokenTable, positions_per_bar
from daemon.train import GuidedTeacher, TrainConfig, evaluate, lr_at, train
from daemon.vocab import SLOTS, Conditions
from tests.support import GROOVE_MINI
from tests.daemon.reference import miditok_hits

TINY = dict(data=GROOVE_MINI, n_layer=1, n_head=2, n_embd=32, block_size=128, batch_size=4, warmup=5, lr=3e-3,
            eval_every=10, eval_windows=4, threads=1)


def test_tiny_model_learns_and_loads_weights_only(tiny_checkpoint):
    model, vocab, meta = checkpoint.load(tiny_checkpoint)
    history = meta["history"]
    uniform = torch.log(torch.tensor(float(len(vocab)))).item()
    assert history[-1]["nll_token"] < uniform - 0.3  # better than guessing
    assert meta["objective"] == "nll_token" and meta["best_val"] == min(h["nll_token"] for h in history)
    state = torch.load(tiny_checkpoint, weights_only=True)  # no pickled code in the file
    assert state["format_version"] == checkpoint.FORMAT_VERSION and "optimizer" not in state
    assert model.config.n_layer == 1 and len(vocab) == model.config.vocab_size


def test_same_seed_same_weights_and_resume_continues(tmp_path):
    cfg = TrainConfig(**TINY, steps=10, out=tmp_path / "a.pt", cache_dir=tmp_path / "cache")
    train(cfg)
    train(replace(cfg, out=tmp_path / "b.pt"))
    a, b = (torch.load(tmp_path / f"{n}.last.pt", weights_only=True)["model"] for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)

    resumed = train(replace(cfg, steps=20, resume=tmp_path / "a.last.pt"))
    last = torch.load(tmp_path / "a.last.pt", weights_only=True)
    assert last["meta"]["step"] == 20 and [h["step"] for h in resumed["history"]] == [10, 20]
    assert not torch.equal(last["model"]["tok_emb.weight"], a["tok_emb.weight"])


def test_test_split_is_tokenized_but_never_sampled(tmp_path):
    _, performances = load_dataset(GROOVE_MINI, tmp_path / "cache")
    splits = {p.split for p in performances}
    assert splits == {"train", "validation", "test"}
    assert {p.meter for p in performances} >= {(4, 4), (3, 4), (6, 8), (5, 4), (5, 8)}
    short_fill = next(p for p in performances if p.kind == "fill")
    assert len(short_fill.bar_starts) >= 1  # short fills are kept, not dropped


def test_the_cache_follows_the_split_not_only_the_file_names(tmp_path):
    """A re-split info.csv with the same files is a new dataset: a stale cache would keep the old
    splits, and could train on what is now the test split."""
    data = tmp_path / "mini"
    shutil.copytree(GROOVE_MINI, data)
    _, before = load_dataset(data, tmp_path / "cache")
    rows = list(csv.DictReader((data / "info.csv").open(newline="")))
    moved = next(r for r in rows if r["split"] == "train")
    moved["split"] = "test"
    with (data / "info.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _, after = load_dataset(data, tmp_path / "cache")
    split = {p.name: p.split for p in after}
    assert split[moved["midi_filename"]] == "test" and {p.name: p.split for p in before}[moved["midi_filename"]] == "train"


def test_the_cache_follows_a_files_bytes_not_its_size(tmp_path):
    """Keyed by file sizes, a take edited in place to the same size was served from the cache."""
    data = tmp_path / "mini"
    shutil.copytree(GROOVE_MINI, data)
    row = next(r for r in csv.DictReader((data / "info.csv").open(newline="")) if r["split"] == "train")
    _, before = load_dataset(data, tmp_path / "cache")
    path = data / row["midi_filename"]
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\x99") + 2  # the first note-on on the drum channel: its velocity byte
    raw[at] = 1 if raw[at] != 1 else 2
    path.write_bytes(bytes(raw))  # the same size, one velocity changed
    _, after = load_dataset(data, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # tokenized again, not served from the cache
    take = lambda found: next(p for p in found if p.name == row["midi_filename"]).ids.tolist()  # noqa: E731
    assert take(after) != take(before)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) < lr_at(9, cfg) == cfg.lr
    assert abs(lr_at(100, cfg) - cfg.min_lr) < 1e-12
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 100))


def test_a_resume_without_optimiser_state_warms_up_again_onto_the_cosine():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(50, cfg, warm_from=50) == pytest.approx(lr_at(50, cfg) / 10)
    assert lr_at(59, cfg, warm_from=50) == lr_at(59, cfg)
    assert lr_at(70, cfg, warm_from=50) == lr_at(70, cfg)


def test_genre_balance_draws_rare_genres_more_often(tmp_path):
    vocab, performances = load_dataset(GROOVE_MINI, tmp_path / "cache")
    train_set = [p for p in performances if p.split == "train"]

    def shares(balance: float) -> dict[str, float]:
        sampler = WindowSampler(train_set, vocab, 128, genre_balance=balance)
        mass = Counter()
        for p, w in zip(train_set, sampler.weights):
            mass[p.genre] += w
        return {g: m / sum(mass.values()) for g, m in mass.items()}

    natural, half, even = shares(0.0), shares(0.5), shares(1.0)
    rare, common = min(natural, key=natural.get), max(natural, key=natural.get)
    assert len(natural) >= 3 and natural[common] > 2 * natural[rare]  # the data is unbalanced
    assert all(abs(share - 1 / len(even)) < 1e-9 for share in even.values())
    assert natural[rare] < half[rare] < even[rare] and natural[common] > half[common] > even[common]
    within = [p for p in train_set if p.genre == common]  # inside a genre, longer takes still weigh more
    sampler = WindowSampler(train_set, vocab, 128, genre_balance=1.0)
    weight = {p.name: w for p, w in zip(train_set, sampler.weights)}
    longest, shortest = max(within, key=lambda p: len(p.bar_starts)), min(within, key=lambda p: len(p.bar_starts))
    assert weight[longest.name] > weight[shortest.name]


def test_guidance_without_a_teacher_is_refused(capsys):
    args = build_parser().parse_args(["train", "--guidance", "2"])
    assert args.func(args) == 2 and "give the teacher too" in capsys.readouterr().err


def test_genre_balance_outside_0_to_1_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--genre-balance", "1.5"])
    assert "must be 0..1, got 1.5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="genre_balance must be 0..1"):
        WindowSampler([], None, 128, genre_balance=-0.1)


def test_the_guided_target_is_what_guided_sampling_draws_from(tmp_path):
    teacher, vocab, _ = checkpoint.load(checkpoint.BUNDLED)
    music = len(vocab.pieces)
    prompt = vocab.prefix(Conditions(genre="funk", drummer="drummer1", tempo=100.0, meter=(4, 4), kind="beat"))
    body = [vocab.bar] + torch.randint(0, music, (20,)).tolist()
    x = torch.tensor([prompt + body])
    with torch.no_grad():
        cond = teacher(x)[..., :music].log_softmax(-1)
        unprompted = teacher(torch.tensor([vocab.prefix(Conditions()) + body]))[..., :music].log_softmax(-1)
    torch.testing.assert_close(GuidedTeacher(teacher, vocab, 1.0).log_probs(x), cond, atol=1e-5, rtol=0)
    torch.testing.assert_close(GuidedTeacher(teacher, vocab, 0.0).log_probs(x), unprompted, atol=1e-5, rtol=0)
    pushed = GuidedTeacher(teacher, vocab, 2.0).log_probs(x)  # past the prompt, away from no prompt
    assert ((pushed - unprompted) * (cond - unprompted)).sum() > ((cond - unprompted) ** 2).sum()


def test_distilling_guidance_brings_plain_sampling_to_the_teachers_guided_distribution(tmp_path):
    # The shipped model teaches; GROOVE_MINI is tokenized with its vocabulary.
    cfg = TrainConfig(**{**TINY, "lr": 1e-4, "batch_size": 8}, steps=30, dropout=0.0, teacher=checkpoint.BUNDLED,
                      guidance=1.5, out=tmp_path / "distilled.pt", cache_dir=tmp_path / "cache")
    result = train(cfg)
    teacher, vocab, _ = checkpoint.load(cfg.teacher)
    student, student_vocab, meta = checkpoint.load(cfg.out)
    tokenized_with, performances = load_dataset(GROOVE_MINI, cfg.cache_dir, vocab=vocab)
    assert (tokenized_with.names, tokenized_with.density_edges) == (vocab.names, vocab.density_edges)  # the teacher's
    windows = evaluation_windows([p for p in performances if p.split == "validation"], vocab, cfg.block_size)
    guided = GuidedTeacher(teacher, vocab, cfg.guidance)
    before = evaluate(checkpoint.load(cfg.teacher)[0], windows, vocab, cfg, torch.device("cpu"), guided)
    after = evaluate(student, windows, vocab, cfg, torch.device("cpu"), guided)
    assert after["kl_token"] < 0.8 * before["kl_token"], (before, after)  # measured: about halved
    assert meta["objective"] == result["objective"] == "kl_token"
    assert meta["best_val"] == min(h["kl_token"] for h in meta["history"])
    assert student.config == replace(teacher.config, dropout=0.0) and student_vocab.names == vocab.names
    assert meta["teacher"]["sha256"] == checkpoint.sha256(checkpoint.BUNDLED)  # where it came from
    bundled = torch.load(checkpoint.BUNDLED, weights_only=True)["meta"]
    assert (meta["teacher"]["device"], meta["teacher"]["torch"]) == (bundled["device"], bundled["torch"])  # on what
    assert meta["train_config"]["n_embd"] == teacher.config.n_embd  # the shape it has, not TINY's


def _bar(vocab, hits: list[tuple[int, int]]) -> list[int]:
    """Unmerged 4/4 ids of one bar of (position, pitch) hits at velocity 96."""
    base = vocab.base_vocab
    ids = [base["Bar_None"], base["TimeSig_4/4"]]
    for position in sorted({p for p, _ in hits}):
        ids.append(base[f"Position_{position}"])
        for p, pitch in hits:
            if p == position:
                ids += [base[f"PitchDrum_{pitch}"], base["Velocity_95"]]
    return ids


def _hits(vocab, ids: list[int], merged: bool = False) -> list[list[tuple[int, int]]]:
    """Per bar, (position, pitch) of the hits in unmerged (or model) ids."""
    bars, position = [], 0
    for name in (n for t in ids for n in (vocab.pieces[t] if merged else [vocab.base_names[t]])):
        if name == "Bar_None":
            bars.append([])
        elif name.startswith("Position_"):
            position = int(name[9:])
        elif name.startswith("PitchDrum_"):
            bars[-1].append((position, int(name[10:])))
    return bars


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return load_dataset(GROOVE_MINI, tmp_path_factory.mktemp("cache"))


def test_rebar_cuts_joins_and_swings_a_4_4_bar(mini):
    vocab, _ = mini
    kick, snare, hat = 36, 38, 42
    straight = [(0, kick), (48, kick), (24, snare), (72, snare)] + [(p, hat) for p in range(0, 96, 12)]
    bar = _bar(vocab, straight)
    seven = _hits(vocab, rebar(bar, (7, 8), vocab))  # 4/4 less its last 8th, counted in 8ths (48 per quarter)
    assert seven == [sorted([(0, kick), (0, hat), (24, hat), (48, snare), (48, hat), (72, hat), (96, kick),
                             (96, hat), (120, hat), (144, snare), (144, hat)], key=lambda h: h[0])]
    five = _hits(vocab, rebar(bar, (5, 4), vocab))[0]  # 1 2 3 4, then beat 3 again
    assert [h for h in five if h[0] >= 96] == [(96, kick), (96, hat), (108, hat)]
    three = _hits(vocab, rebar(bar, (3, 4), vocab))[0]
    assert max(p for p, _ in three) == 60 and (72, snare) not in three
    six = _hits(vocab, rebar(bar, (6, 8), vocab))  # each beat a dotted quarter, the straight 8th swung
    assert len(six) == 2
    assert six[0] == [(0, kick), (0, hat), (48, hat), (72, snare), (72, hat), (120, hat)]
    assert six[1] == [(0, kick), (0, hat), (48, hat), (72, snare), (72, hat), (120, hat)]
    shuffle = _bar(vocab, [(0, kick), (16, hat), (24, snare), (40, hat), (48, kick), (64, hat), (72, snare), (88, hat)])
    twelve = _hits(vocab, rebar(shuffle, (12, 8), vocab))[0]  # already on triplets: kept there
    assert [p for p, k in twelve if k == hat] == [48, 120, 192, 264]
    assert rebar_tempo(100.0, (12, 8)) == 150.0 and rebar_tempo(100.0, (7, 8)) == 100.0


def test_every_replayed_window_is_a_valid_sequence_in_its_meter(mini):
    vocab, performances = mini
    table = TokenTable(vocab)
    takes = [p for p in performances if p.split == "train" and p.meter == (4, 4)]
    sampler = WindowSampler(takes, vocab, 256, rebar=1.0)
    assert set(sampler.meters) == set(REBAR_METERS) and all(m in vocab.meters for m in REBAR_METERS)
    for meter in REBAR_METERS:
        for take in takes[:3]:
            first = len(take.bar_starts) // 2
            body, bars = sampler.window(take, first, True, meter)
            wanted = sum(1 for t in body if vocab.pieces[t][0] == "Bar_None")
            BarState(wanted, meter).follow(body, table)  # raises on any token the grammar refuses
            hits = [h for bar in _hits(vocab, body, merged=True) for h in bar]
            assert hits and max(p for p, _ in hits) < positions_per_bar(meter)
            per_bar = {(3, 8): 4, (6, 8): 2}.get(meter, 1)  # the window's bars per bar of the take
            assert replayed_bars(meter) == per_bar
            assert bars == range(first, first + max(math.ceil(wanted / per_bar), 1))  # its labels' bars


def test_rebar_share_of_windows_and_their_prompts(mini):
    vocab, performances = mini
    takes = [p for p in performances if p.split == "train"]
    meter_of = {vocab.slot_id("meter", m): m for m in vocab.meters}

    def meters(share: float) -> Counter:
        sampler = WindowSampler(takes, vocab, 256, rebar=share, drop_slot=0.0, drop_all=0.0, seed=3)
        return Counter(meter_of[sampler.sample()[SLOTS.index("meter")]] for _ in range(800))

    as_recorded, half = meters(0.0), meters(0.5)
    assert set(as_recorded) == {p.meter for p in takes}  # GROOVE_MINI's meters, nothing else
    assert 0.35 < half[(4, 4)] / as_recorded[(4, 4)] < 0.65  # about half the 4/4 windows replayed
    assert len(set(half) - set(as_recorded)) >= 8  # in meters GMD never plays
    # rebar 0 draws the windows of the recipe before meter replay, the very same ones: this is
    # the hash of 200 windows drawn by that recipe's code (commit a553d80) with these arguments.
    plain = WindowSampler(takes, vocab, 256, seed=7, genre_balance=0.5, rebar=0.0)
    drawn = repr([plain.sample() for _ in range(200)]).encode()
    assert hashlib.sha256(drawn).hexdigest()[:16] == "6594d513af8bc709"
    with pytest.raises(ValueError, match="rebar must be 0..1"):
        WindowSampler(takes, vocab, 128, rebar=1.5)


def test_nll_per_note_counts_every_hit_of_the_targets_wherever_bpe_put_it(tiny_checkpoint, mini):
    """A merged token may begin with a position and carry hits after it: they are notes too.
    Counted here independently, by decoding the targets' hits with MidiTok."""
    model, vocab, _ = checkpoint.load(tiny_checkpoint)
    _, performances = mini
    windows = evaluation_windows([p for p in performances if p.split == "validation"], vocab, 128)
    cfg = TrainConfig(**{**TINY, "batch_size": 4})
    metrics = evaluate(model, windows, vocab, cfg, torch.device("cpu"))
    targets = [w[1:128 + 1] for w in windows]  # what collate predicts: every token after the first
    hits = sum(len(miditok_hits(vocab, [t for t in ids if t < len(vocab.pieces)])) for ids in targets)
    assert hits > 0 and round(metrics["nll_token"] * metrics["tokens"] / metrics["nll_note"]) == hits


@pytest.mark.parametrize("flags, says", [(["--steps", "-5"], "steps -5: must be at least 1"),
                                         (["--eval-every", "0"], "eval_every 0"),
                                         (["--warmup", "0"], "warmup 0"),
                                         (["--limit-files", "0"], "limit_files 0"),
                                         (["--block-size", "4"], "leaves no room after the 7-token prompt"),
                                         (["--n-head", "3", "--n-embd", "32"], "multiple of n_head 3"),
                                         (["--grad-clip", "-1"], "--grad-clip -1.0 must be above 0"),
                                         (["--min-lr", "-0.01"], "--min-lr -0.01 must be at least 0"),
                                         (["--weight-decay", "nan"], "--weight-decay nan must be at least 0"),
                                         (["--lr", "1e-4", "--min-lr", "1e-3"], "is above --lr 0.0001")])
def test_options_that_would_crash_or_train_nothing_are_refused_in_one_line(flags, says, capsys):
    from daemon.cli import main

    assert main(["train", "--data", str(GROOVE_MINI), *flags]) == 1
    err = capsys.readouterr().err
    assert says in err and err.strip().count("\n") == 0


def test_a_dataset_without_a_validation_split_is_refused(tmp_path):
    data = tmp_path / "mini"
    shutil.copytree(GROOVE_MINI, data)
    lines = (data / "info.csv").read_text().splitlines()
    (data / "info.csv").write_text("\n".join(line.removesuffix(",validation") + (",train" if line.endswith(
        ",validation") else "") for line in lines) + "\n")
    with pytest.raises(ValueError, match="no validation performances"):
        train(TrainConfig(**{**TINY, "data": data}, steps=2, out=tmp_path / "m.pt", cache_dir=tmp_path / "cache"))


def test_a_resumed_run_goes_on_with_its_checkpoints_vocabulary_and_shape(tiny_checkpoint, tmp_path):
    """Not a vocabulary rebuilt from --data (other merges for the same ids), nor another width."""
    data = tmp_path / "mini"
    shutil.copytree(GROOVE_MINI, data)
    rows = (data / "info.csv").read_text().splitlines()
    header, train_rows = rows[0], [r for r in rows[1:] if r.endswith(",train")]
    kept = [header] + [r for r in rows[1:] if not r.endswith(",train")] + train_rows[: len(train_rows) // 2]
    (data / "info.csv").write_text("\n".join(kept) + "\n")  # half the train files: BPE would merge otherwise
    _, vocab, _ = checkpoint.load(tiny_checkpoint)
    meta = train(TrainConfig(**{**TINY, "data": data, "n_embd": 64}, steps=31, out=tmp_path / "r.pt",
                             cache_dir=tmp_path / "cache", resume=tiny_checkpoint))
    model, resumed_vocab, _ = checkpoint.load(tmp_path / "r.last.pt")
    assert resumed_vocab.to_dict() == vocab.to_dict() and model.config.n_embd == 32
    assert meta["history"][-1]["nll_token"] < math.log(len(vocab)) - 0.3  # it still knows what it learned


def test_a_damaged_dataset_is_named_not_a_traceback(tmp_path, caplog):
    """A missing column or a bpm that is no number was a KeyError or ValueError traceback; a
    corrupt train file one from symusic while BPE was learned; no train rows an IndexError."""
    data = tmp_path / "mini"
    shutil.copytree(GROOVE_MINI, data)
    rows = list(csv.DictReader((data / "info.csv").open(newline="")))

    def write(rows: list[dict], columns: list[str]) -> None:
        with (data / "info.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    columns = list(rows[0])
    write(rows, [c for c in columns if c != "bpm"])
    with pytest.raises(ValueError, match="info.csv has no bpm column"):
        load_dataset(data, tmp_path / "cache")
    write([{**rows[0], "bpm": "fast"}] + rows[1:], columns)
    with pytest.raises(ValueError, match="info.csv line 2: bpm 'fast'"):
        load_dataset(data, tmp_path / "cache")
    write([r for r in rows if r["split"] != "train"], columns)
    with pytest.raises(ValueError, match="no train-split performances"):
        load_dataset(data, tmp_path / "cache")
    (data / "info.csv").write_text(",".join(columns) + "\n" + ",".join(rows[0][c] for c in columns[:-1]) + "\n")
    with pytest.raises(ValueError, match="info.csv line 2 has fewer fields than its header"):
        load_dataset(data, tmp_path / "cache")
    (data / "info.csv").write_text(",".join(columns) + "\n" + ",".join(rows[0][c] for c in columns) + ",x\n")
    with pytest.raises(ValueError, match="info.csv line 2 has more fields than its header"):
        load_dataset(data, tmp_path / "cache")
    write(rows, columns)
    broken = next(r for r in rows if r["split"] == "train")["midi_filename"]
    (data / broken).write_bytes(b"MThd not really")
    _, performances = load_dataset(data, tmp_path / "cache")
    assert broken not in {p.name for p in performances} and len(performances) == len(rows) - 1
    assert sum(broken in r.getMessage() for r in caplog.records) == 2  # skipped by BPE, then by tokenizing


def test_a_cache_that_cannot_be_read_is_made_again(tmp_path, caplog):
    """A cache cut short (a Ctrl-C while it was written) failed every later run with "[Errno 22]
    Invalid argument", naming no file."""
    vocab, performances = load_dataset(GROOVE_MINI, tmp_path / "cache")
    (cache,) = (tmp_path / "cache").glob("*.pt")
    cache.write_bytes(cache.read_bytes()[:1000])
    again, rebuilt = load_dataset(GROOVE_MINI, tmp_path / "cache")
    assert again.to_dict() == vocab.to_dict() and len(rebuilt) == len(performances)
    assert any("could not be read" in r.getMessage() for r in caplog.records)
    assert torch.load(cache, weights_only=True)["vocab"] == vocab.to_dict()  # written whole again
    assert list((tmp_path / "cache").glob("*.tmp")) == []


def test_an_unwritable_out_is_refused_before_any_data_is_read(tmp_path, monkeypatch):
    """The first save comes at the first validation, minutes in: an --out that cannot be written
    was a traceback after the training it threw away."""
    import daemon.train

    monkeypatch.setattr(daemon.train, "load_dataset", lambda *a, **k: pytest.fail("data read first"))
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    for out in (tmp_path / "a-file" / "m.pt", tmp_path / "a-folder"):
        with pytest.raises(OSError):
            train(TrainConfig(**TINY, steps=2, out=out, cache_dir=tmp_path / "cache"))
    (tmp_path / "keep.tmp").write_text("mine")
    checkpoint.check_writable(tmp_path / "keep.tmp")  # its probe is a file of its own, not the path made .tmp
    assert (tmp_path / "keep.tmp").read_text() == "mine" and not list(tmp_path.glob(".write-test-*"))


def test_a_resume_that_would_train_nothing_or_undo_a_distillation_is_refused(tiny_checkpoint, tmp_path):
    cfg = TrainConfig(**TINY, steps=10, out=tmp_path / "r.pt", cache_dir=tmp_path / "cache")
    step = torch.load(tiny_checkpoint, weights_only=True)["meta"]["step"]
    with pytest.raises(ValueError, match=f"is at step {step}: --steps {step} leaves nothing to train"):
        train(replace(cfg, steps=step, resume=tiny_checkpoint))
    state = torch.load(tiny_checkpoint, weights_only=True)
    distilled = tmp_path / "distilled.pt"
    checkpoint.write(distilled, {**state, "meta": {**state["meta"], "teacher": {"sha256": "0" * 64, "guidance": 2.0}}})
    with pytest.raises(ValueError, match="was distilled from a guided teacher"):
        train(replace(cfg, steps=step + 10, resume=distilled))
    damaged = tmp_path / "damaged.pt"
    checkpoint.write(damaged, {**state, "model": {**state["model"], "ln_f.weight": torch.zeros(3)}})
    with pytest.raises(ValueError, match="damaged.pt is a damaged checkpoint"):
        train(replace(cfg, steps=step + 10, resume=damaged))


def test_a_run_that_diverges_stops_and_says_so(tmp_path):
    """At --lr 1e6 it trained on NaN to the end, saved nothing and printed "best inf", exit 0."""
    with pytest.raises(ValueError, match="the run diverged"):
        train(TrainConfig(**{**TINY, "lr": 1e6}, steps=40, out=tmp_path / "m.pt", cache_dir=tmp_path / "cache"))


def _train_in_background(tmp_path, eval_every: int, **popen):
    """`drumigen train` on the tiny data in a subprocess, once its training loop has begun."""
    import sys
    import time

    from tests.support import ROOT

    cmd = [sys.executable, "-m", "daemon.cli", "train", "--data", str(GROOVE_MINI), "--out", str(tmp_path / "m.pt"),
           "--cache-dir", str(tmp_path / "cache"), "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
           "--block-size", "128", "--batch-size", "4", "--steps", "100000", "--eval-every", str(eval_every),
           "--eval-windows", "4", "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    said, deadline = "", time.monotonic() + 120
    while "model:" not in said and time.monotonic() < deadline:  # training starts after this line
        said += proc.stderr.readline()
    time.sleep(3)  # some steps
    return proc


@pytest.mark.parametrize("eval_every", [50000, 1])  # 1: every step validates, and the stop comes after it
def test_ctrl_c_keeps_the_steps_since_the_last_validation_for_resume(tmp_path, eval_every):
    """.last.pt was written only at validation: a Ctrl-C lost up to --eval-every - 1 steps (399
    by default, ~5 CPU minutes). It stops at the end of the step under way and saves there."""
    import signal

    proc = _train_in_background(tmp_path, eval_every)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in rest, rest
    step = torch.load(tmp_path / "m.last.pt", weights_only=True)["meta"]["step"]
    assert 0 < step < 100000 and f"stopped at step {step}" in rest
    resumed = train(TrainConfig(**{**TINY, "eval_every": 50000}, steps=step + 2, out=tmp_path / "m.pt",
                                cache_dir=tmp_path / "cache", resume=tmp_path / "m.last.pt"))
    assert resumed["history"][-1]["step"] == step + 2


def test_a_run_started_with_ctrl_c_ignored_goes_on_ignoring_it(tmp_path):
    """A job started in the background of a shell ignores SIGINT; the stop-between-steps handler
    must not turn it back on."""
    import signal

    proc = _train_in_background(tmp_path, 50000, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    finally:
        proc.kill()
        proc.communicate()
