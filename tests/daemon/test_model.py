"""DrumTransformer: the cached and fast decode paths against the plain full forward, the KV
cache's row surgery, the FLOP count, and the CPU training path's dropout."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import daemon.model
from daemon import checkpoint
from daemon.model import DrumTransformer, Dropout, ModelConfig, causal_attention_dropout_cpu, keep_mask

pytestmark = pytest.mark.usefixtures("one_thread")


ATOL = 1e-5  # float32 rounding of a different summation order, relative to logits of O(1)


def tiny(seed: int = 0, **overrides) -> DrumTransformer:
    torch.manual_seed(seed)
    config = dict(vocab_size=61, block_size=48, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    config.update(overrides)
    model = DrumTransformer(ModelConfig(**config)).eval()
    with torch.no_grad():  # larger than the init's std 0.02, so logits differ by more than rounding
        for p in model.parameters():
            p.mul_(10.0 if p.dim() > 1 else 1.0)
    return model


@pytest.fixture(scope="module")
def bundled() -> DrumTransformer:
    model, _, _ = checkpoint.load(checkpoint.BUNDLED)
    return model


def full_logits(model: DrumTransformer, seq: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([seq]))[0]  # (T, V)


def test_cached_forward_in_chunks_equals_full_forward():
    model = tiny()
    seq = torch.randint(0, 61, (2, 30))
    with torch.no_grad():
        want = model(seq)
        cache = model.new_cache(2)
        got = torch.cat([model(seq[:, :10], cache), model(seq[:, 10:11], cache), model(seq[:, 11:], cache)], 1)
    assert cache.length == 30
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("use_step", [False, True])
def test_decode_with_left_padding_equals_each_row_alone(use_step):
    """Rows of different lengths share a cache through left padding; every logit of every row
    equals that row's own full forward, whether decoding goes through forward() or step()."""
    model = tiny(1)
    g = torch.Generator().manual_seed(1)
    lengths, new = [9, 4, 13, 1], 20
    seqs = [torch.randint(0, 61, (n + new,), generator=g).tolist() for n in lengths]
    longest = max(lengths)
    pads = torch.tensor([longest - n for n in lengths])
    idx = torch.tensor([[0] * (longest - n) + s[:n] for s, n in zip(seqs, lengths)])
    with torch.inference_mode():
        cache = model.new_cache(len(seqs), pad=pads)
        first = model(idx, cache)[:, -1]
        steps = []
        for t in range(new):
            tok = torch.tensor([s[n + t] for s, n in zip(seqs, lengths)])
            steps.append(model.step(tok, cache) if use_step else model(tok[:, None], cache)[:, -1])
    for b, (s, n) in enumerate(zip(seqs, lengths)):
        want = full_logits(model, s)
        torch.testing.assert_close(first[b], want[n - 1], atol=ATOL, rtol=0)
        for t in range(new):
            torch.testing.assert_close(steps[t][b], want[n + t], atol=ATOL, rtol=0)


def test_step_equals_forward_without_padding_and_limits_the_vocabulary():
    model = tiny(2)
    seq = torch.randint(0, 61, (3, 12))
    with torch.inference_mode():
        c1, c2 = model.new_cache(3), model.new_cache(3)
        model(seq, c1), model(seq, c2)
        for t in range(25):
            tok = torch.randint(0, 61, (3,))
            want = model(tok[:, None], c1)[:, -1]
            got = model.step(tok, c2, vocab=40 if t % 2 else None)
            torch.testing.assert_close(got, want[:, : got.shape[1]], atol=ATOL, rtol=0)
    assert c1.length == c2.length == 37


def test_step_on_the_bundled_model_equals_forward(bundled):
    g = torch.Generator().manual_seed(3)
    pads = torch.tensor([0, 5])
    idx = torch.randint(0, 1000, (2, 40), generator=g)
    with torch.inference_mode():
        c1, c2 = bundled.new_cache(2, pad=pads), bundled.new_cache(2, pad=pads)
        bundled(idx, c1), bundled(idx, c2)
        for _ in range(10):
            tok = torch.randint(0, 1000, (2,), generator=g)
            torch.testing.assert_close(bundled.step(tok, c2), bundled(tok[:, None], c1)[:, -1], atol=1e-4, rtol=0)


def test_step_sees_weight_changes():
    """step() keeps transposed copies of the weights; changing a parameter in place (an
    optimizer step, load_state_dict) or moving the model must not leave them stale."""
    model, other = tiny(4), tiny(5)
    seq = torch.randint(0, 61, (1, 8))

    def both(m):
        with torch.inference_mode():
            c1, c2 = m.new_cache(1), m.new_cache(1)
            m(seq, c1), m(seq, c2)
            tok = torch.tensor([3])
            return m.step(tok, c2), m(tok[:, None], c1)[:, -1]

    both(model)  # builds the copies
    model.load_state_dict(other.state_dict())
    got, want = both(model)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    model.double()
    got, want = both(model)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_cache_keep_drops_rows_and_the_rest_decode_unchanged():
    model = tiny(6)
    seq = torch.randint(0, 61, (4, 10))
    pads = torch.tensor([0, 2, 0, 3])
    with torch.inference_mode():
        ref, cache = model.new_cache(4, pad=pads), model.new_cache(4, pad=pads)
        model(seq, ref), model(seq, cache)
        cache.keep([1, 3])
        tok = torch.randint(0, 61, (4,))
        want = model.step(tok, ref)[[1, 3]]
        got = model.step(tok[[1, 3]], cache)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    assert cache.pad.tolist() == [2, 3]
    with pytest.raises(ValueError):
        cache.keep([1, 0])


def test_cache_replace_row_and_shift_keep_positions():
    """A row whose window restarts gets a shorter context right-aligned in its cache row; a full
    cache forgets leading padding. Both keep every row's logits those of its own context."""
    model = tiny(7)
    g = torch.Generator().manual_seed(7)
    a = torch.randint(0, 61, (30,), generator=g).tolist()
    b = torch.randint(0, 61, (30,), generator=g).tolist()
    with torch.inference_mode():
        cache = model.new_cache(2, length=24)
        model(torch.tensor([a[:20], b[:20]]), cache)  # both rows 20 tokens
        fresh = model.new_cache(1)
        model(torch.tensor([b[14:20]]), fresh)  # row 1 restarts from its token 14
        cache.replace_row(1, fresh, 0)
        assert cache.pad.tolist() == [0, 14] and cache.real_length(1) == 6
        out = [model.step(torch.tensor([a[20], b[20]]), cache)]
        with pytest.raises(ValueError):
            cache.shift(1)  # row 0 has no padding to forget
        fresh = model.new_cache(1)
        model(torch.tensor([a[17:21]]), fresh)  # row 0 restarts from its token 17
        cache.replace_row(0, fresh, 0)
        cache.shift(10)
        assert cache.length == 11 and cache.pad.tolist() == [7, 4]
        out.append(model.step(torch.tensor([a[21], b[21]]), cache))
    torch.testing.assert_close(out[0][0], full_logits(model, a[:21])[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[0][1], full_logits(model, b[14:21])[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[1][0], full_logits(model, a[17:22])[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[1][1], full_logits(model, b[14:22])[-1], atol=ATOL, rtol=0)


def step_at(model: DrumTransformer, tok: torch.Tensor, cache, vocab: int | None = None) -> torch.Tensor:
    """model.step_at as daemon/cuda_graphs.py drives it: the slot and the padding as tensors."""
    pad = torch.zeros(len(tok), dtype=torch.long) if cache.pad is None else cache.pad
    logits = model.step_at(tok, torch.tensor([cache.length]), pad, cache.buffer, vocab)
    cache.length += 1
    return logits


def test_step_at_equals_step_through_padding_finished_rows_and_slides():
    """The fixed-shape step a CUDA graph replays attends over every slot, masked. Its cache
    holds an earlier call's keys beyond the filled slots (the graphs keep one buffer); they
    must stay invisible through left padding, rows leaving, a row's window restarting and a
    full cache shifting, exactly where step() reads only the filled slots."""
    model = tiny(9)
    g = torch.Generator().manual_seed(9)
    seqs = [torch.randint(0, 61, (40,), generator=g).tolist() for _ in range(3)]
    lengths = [5, 12, 8]
    pads = torch.tensor([12 - n for n in lengths])
    idx = torch.tensor([[0] * (12 - n) + s[:n] for s, n in zip(seqs, lengths)])
    stale = torch.randn(2, 2, 3, 2, 60, 16, generator=g)  # (layers, k/v, rows, heads, slots, head_dim)
    with torch.inference_mode():
        plain, fixed = model.new_cache(3, 60, pad=pads), model.new_cache(3, 60, pad=pads, buffer=stale)
        model(idx, plain), model(idx, fixed)
        pos = list(lengths)

        def both(rows: list[int], vocab: int | None = None) -> None:
            tok = torch.tensor([seqs[r][pos[r]] for r in rows])
            torch.testing.assert_close(step_at(model, tok, fixed, vocab), model.step(tok, plain, vocab), atol=ATOL, rtol=0)
            for r in rows:
                pos[r] += 1

        for t in range(10):
            both([0, 1, 2], vocab=40 if t % 2 else None)
        for cache in (plain, fixed):
            cache.keep([0, 2])  # row 1 finished
        for _ in range(5):
            both([0, 2])
        for cache in (plain, fixed):  # row 2 restarts its window from its token 10
            fresh = model.new_cache(1)
            model(torch.tensor([seqs[2][10 : pos[2]]]), fresh)
            cache.replace_row(1, fresh, 0)
            cache.shift(4)
        both([0, 2])
    assert fixed.buffer.data_ptr() == stale.data_ptr() and fixed.length == plain.length == 24


def test_limits_raise():
    model = tiny()
    with pytest.raises(ValueError, match="block size"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with torch.inference_mode():
        cache = model.new_cache(1)
        model(torch.zeros(1, 48, dtype=torch.long), cache)
        with pytest.raises(ValueError):
            model.step(torch.tensor([1]), cache)


@pytest.mark.parametrize("context", [1, 17, 40])
def test_flops_per_token_matches_torch_flop_counter(context):
    """One decode token at a context of `context` positions (itself included): the count
    equals torch's FLOP counter over step()'s matmuls plus the two attention matmuls per layer
    (the counter does not see inside CPU SDPA, so those run here as plain matmuls)."""
    model = tiny(8)
    c = model.config
    head_dim = c.n_embd // c.n_head
    with torch.inference_mode():
        cache = model.new_cache(1)
        if context > 1:
            model(torch.zeros(1, context - 1, dtype=torch.long), cache)
        counter = FlopCounterMode(display=False)
        with counter:
            model.step(torch.tensor([1]), cache, vocab=50)
            for _ in range(c.n_layer):
                q, k = torch.randn(1, c.n_head, 1, head_dim), torch.randn(1, c.n_head, context, head_dim)
                torch.softmax(q @ k.transpose(-1, -2), -1) @ k
    assert model.flops_per_token(context, vocab=50) == counter.get_total_flops()
    assert model.flops_per_token(context) == 2 * c.n_layer * 12 * c.n_embd**2 + 2 * c.n_embd * c.vocab_size \
        + 4 * c.n_layer * context * c.n_embd


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_keep_mask_drops_p_and_its_scale_keeps_the_mean(p):
    torch.manual_seed(0)
    keep, scale = keep_mask((1000, 1000), p, torch.device("cpu"))
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    assert abs((~keep).float().mean().item() - p) < 0.002  # 5 standard deviations at p = 0.5
    assert abs(keep.float().mean().item() * scale - 1) < 0.003
    rows = keep.float().mean(1)  # every stretch of the bits is used, none is constant
    assert rows.min().item() > 1 - p - 0.07 and rows.max().item() < 1 - p + 0.07


def test_keep_mask_is_reproducible_from_torch_seed_and_exact_at_zero():
    torch.manual_seed(3)
    a, _ = keep_mask((7, 9), 0.3, torch.device("cpu"))
    torch.manual_seed(3)
    b, _ = keep_mask((7, 9), 0.3, torch.device("cpu"))
    assert torch.equal(a, b)
    assert keep_mask((64, 64), 0.0, torch.device("cpu"))[0].all()
    keep, scale = keep_mask((64, 64), 1.0, torch.device("cpu"))
    assert not keep.any() and scale == 0.0
    assert torch.equal(Dropout(1.0)(torch.ones(5)), torch.zeros(5))


def test_cpu_dropout_zeroes_p_and_scales_the_rest():
    torch.manual_seed(0)
    drop, x = Dropout(0.25), torch.full((400, 500), 2.0, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.tensor(2.0 / 0.75))
    assert abs(kept.float().mean().item() - 0.75) < 0.003
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert torch.equal(drop.eval()(x), x)


def causal_sdpa(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_cpu_attention_dropout_at_zero_equals_sdpa_forward_and_backward():
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 2, 24, 8, requires_grad=True) for _ in range(3))  # 5 rows: chunks of 4 and 1
    ours = causal_attention_dropout_cpu(q, k, v, 0.0)
    ours.square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    causal_sdpa(q, k, v).square().sum().backward()
    assert torch.allclose(ours, causal_sdpa(q, k, v), atol=ATOL)
    for ours_grad, t in zip(grads, (q, k, v)):
        assert torch.allclose(ours_grad, t.grad, atol=1e-4)


def test_cpu_attention_dropout_is_causal_and_unbiased():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16, 8) for _ in range(3))
    changed_future_k, changed_future_v = k.clone(), v.clone()
    changed_future_k[:, :, 10:] += 5.0
    changed_future_v[:, :, 10:] -= 5.0
    torch.manual_seed(1)
    a = causal_attention_dropout_cpu(q, k, v, 0.3)
    torch.manual_seed(1)
    b = causal_attention_dropout_cpu(q, changed_future_k, changed_future_v, 0.3)
    assert torch.equal(a[:, :, :10], b[:, :, :10]) and not torch.equal(a, b)
    mean = sum(causal_attention_dropout_cpu(q, k, v, 0.3) for _ in range(3000)) / 3000
    assert (mean - causal_sdpa(q, k, v)).abs().max().item() < 0.1  # the spread of one draw is ~1


def test_cpu_attention_dropout_zeroes_p_of_the_weights_and_scales_the_rest():
    torch.manual_seed(0)
    T = 32
    q, k = torch.randn(8, 4, T, T), torch.randn(8, 4, T, T)
    v = torch.eye(T).expand(8, 4, T, T)  # the output is the attention weights themselves
    exact = torch.softmax((q @ k.transpose(-2, -1)) * T**-0.5 + torch.full((T, T), float("-inf")).triu(1), -1)
    dropped = causal_attention_dropout_cpu(q, k, v, 0.3)
    seen = exact > 0  # the causal triangle
    zeroed = (dropped == 0) & seen
    assert abs(zeroed.sum().item() / seen.sum().item() - 0.3) < 0.02
    kept = seen & ~zeroed
    scale = keep_mask((1,), 0.3, torch.device("cpu"))[1]
    assert torch.allclose(dropped[kept], exact[kept] * scale, atol=1e-6)
    assert not dropped[~seen].any()


def test_training_on_cpu_takes_the_dropout_path_and_eval_does_not(monkeypatch):
    calls = []
    real = daemon.model.causal_attention_dropout_cpu
    monkeypatch.setattr(daemon.model, "causal_attention_dropout_cpu", lambda *a: calls.append(1) or real(*a))
    model = tiny(dropout=0.2).train()
    x = torch.randint(0, 61, (3, 20))
    torch.manual_seed(5)
    a = model(x)
    torch.manual_seed(5)
    assert torch.equal(a, model(x))  # reproducible from the seed
    assert not torch.allclose(a, model(x))  # and random
    assert len(calls) == 3 * 2  # three forward passes, two layers
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), tiny(dropout=0.0)(x), atol=ATOL)
    assert len(calls) == 6
