"""Training end to end on real GMD files, small enough for CI: it learns, saves, resumes, repeats."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch

from daemon import checkpoint
from daemon.cli import build_parser
from daemon.data import WindowSampler, evaluation_windows, load_dataset
from daemon.train import GuidedTeacher, TrainConfig, evaluate, lr_at, train
from daemon.vocab import Conditions
from tests.support import GROOVE_MINI

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
    assert meta["train_config"]["n_embd"] == teacher.config.n_embd  # the shape it has, not TINY's
