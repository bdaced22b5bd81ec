"""The drummer: a small decoder-only Transformer with a pre-allocated KV cache.

Sized for batch-1 latency on a 2-core CPU, where per-op overhead, not FLOPs, dominates
(docs/model.md counts both). Conditioning arrives as ordinary prefix tokens; a style mix
replaces one prefix embedding with a weighted blend (see `forward(prefix_mix=...)`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class ModelConfig:
    vocab_size: int
    block_size: int = 512  # longest sequence seen in training, prefix included
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    dropout: float = 0.1


class KVCache:
    """Keys and values for every layer, allocated once per generation call (on a GPU, kept
    across calls: daemon/cuda_graphs.py).

    Growing tensors with torch.cat each step costs an allocation and a copy per layer
    per token; writing into a slice of a fixed buffer costs neither.
    """

    def __init__(self, config: ModelConfig, batch: int, length: int, device, dtype,
                 pad: torch.Tensor | None = None, buffer: torch.Tensor | None = None) -> None:
        head_dim = config.n_embd // config.n_head
        shape = (config.n_layer, 2, batch, config.n_head, length, head_dim)
        if buffer is not None and (tuple(buffer.shape) != shape or buffer.dtype != dtype):
            raise ValueError(f"a cache buffer of {tuple(buffer.shape)} {buffer.dtype} is not {shape} {dtype}")
        # `buffer`: memory kept across calls (daemon/cuda_graphs.py, whose graphs are bound to it)
        self.buffer = torch.empty(shape, device=device, dtype=dtype) if buffer is None else buffer
        self.layers = self.buffer.unbind(0)  # per-layer (2, B, H, length, head_dim) views
        self.length = 0  # slots filled so far, the same for every row
        self.set_pad(pad)

    @property
    def capacity(self) -> int:
        return self.buffer.shape[4]

    def set_pad(self, pad: torch.Tensor | None) -> None:
        """Rows of different lengths are left-padded: row b's first pad[b] slots are not attended
        to, and its positions count from its first real token. None when no row is padded."""
        self.pad = pad if pad is not None and bool(pad.any()) else None
        # (B, 1, 1, capacity): the slots a one-token step may attend to, built here, not per step.
        self.visible = None if self.pad is None else (
            torch.arange(self.capacity, device=self.buffer.device)[None, :] >= self.pad[:, None])[:, None, None]

    def real_length(self, row: int) -> int:
        return self.length - (0 if self.pad is None else int(self.pad[row]))

    def key_mask(self, queries: int) -> torch.Tensor | None:
        """(B, 1, T, S) attention mask for `queries` new tokens, or None when SDPA needs none."""
        start, S = self.length, self.length + queries
        keys = torch.arange(S, device=self.buffer.device)
        query_pos = start + torch.arange(queries, device=keys.device)
        causal = keys[None, :] <= query_pos[:, None]  # (T, S)
        if self.pad is None:
            return None if queries == 1 else causal[None, None]
        real_key = keys[None, None, :] >= self.pad[:, None, None]  # (B, 1, S)
        # Pad queries still see their causal keys: a row with no visible key would be NaN, and
        # NaN keys and values would leak into real rows through zero attention weights.
        pad_query = query_pos[None, :, None] < self.pad[:, None, None]  # (B, T, 1)
        return (causal[None] & (real_key | pad_query))[:, None]

    def keep(self, rows: list[int]) -> None:
        """Keep only batch `rows` (ascending), in place: rows that finished sampling drop out.

        Only the filled slots of the rows after the first dropped one move, and the batch stays
        a view of the same buffer.
        """
        if sorted(rows) != list(rows) or len(set(rows)) != len(rows):
            raise ValueError("keep() takes ascending, distinct row indices")
        moved = next((i for i, row in enumerate(rows) if row != i), len(rows))  # rows before stay put
        if moved < len(rows):
            filled = self.buffer[..., : self.length, :]
            filled[:, :, moved : len(rows)] = filled[:, :, rows[moved:]]  # the gather copies first
        self.buffer = self.buffer[:, :, : len(rows)]
        self.layers = self.buffer.unbind(0)
        if self.pad is not None:
            self.set_pad(self.pad[torch.tensor(rows, device=self.pad.device)])

    def replace_row(self, row: int, source: "KVCache", source_row: int) -> None:
        """Row `row` now holds `source_row`'s real tokens of `source`, ending at this cache's
        last filled slot (a row that slid its window to a shorter context)."""
        n = source.real_length(source_row)
        if n > self.length:
            raise ValueError(f"{n} tokens do not fit before slot {self.length}")
        self.buffer[:, :, row, :, self.length - n : self.length] = \
            source.buffer[:, :, source_row, :, source.length - n : source.length]
        pad = torch.zeros(self.buffer.shape[2], dtype=torch.long, device=self.buffer.device) \
            if self.pad is None else self.pad.clone()
        pad[row] = self.length - n
        self.set_pad(pad)

    def shift(self, slots: int) -> None:
        """Forget the first `slots` slots of every row, making room at the end; only padding
        may be forgotten, so no row loses a real token and no position changes."""
        if slots <= 0:
            return
        if self.pad is None or int(self.pad.min()) < slots:
            raise ValueError(f"every row must be padded by at least {slots} slots to shift")
        kept = self.buffer[..., slots : self.length, :].clone()  # source and target overlap
        self.buffer[..., : self.length - slots, :] = kept
        self.length -= slots
        self.set_pad(self.pad - slots)


def keep_mask(shape: tuple[int, ...], p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A dropout keep-mask and the scale that keeps its expectation 1, from 16 random bits an
    element: each 64-bit draw of torch's generator covers four elements. torch's CPU dropout
    draws a 32-bit number per element (~5 ns each, 120 ms for one layer's attention weights of a
    training step); this takes a tenth of that. P(drop) is p to within 2^-17, and the scale is
    exact for it (0 when everything drops, as nn.Dropout(1.0) gives zeros)."""
    dropped = round(p * 65536)
    if dropped >= 65536:
        return torch.zeros(shape, dtype=torch.bool, device=device), 0.0
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, 2**63 - 1)
    return bits.view(torch.int16)[:n].view(shape) >= dropped - 32768, 65536 / (65536 - dropped)


class Dropout(nn.Dropout):
    """nn.Dropout, with its masks drawn by keep_mask() on a CPU (docs/model.md: "What the CPU
    path does now")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.inplace or x.device.type != "cpu":
            return super().forward(x)
        keep, scale = keep_mask(x.shape, self.p, x.device)
        return x * keep * scale


def causal_attention_dropout_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float,
                                 rows: int = 4) -> torch.Tensor:
    """Causal attention with dropout p on its weights, for training on a CPU: SDPA's fused CPU
    kernel has no dropout, and its math path took a training step from 0.67 s to 1.05 s. Here the
    weights are formed `rows` batch rows at a time (4 x 4 heads x 384^2 floats, 9 MB, not the
    whole batch's 38 MB, so each pass over them stays in cache), the causal mask is added in the
    score matmul, and the masks come from keep_mask()."""
    B, H, T, D = q.shape
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu_(1)
    hidden = torch.zeros(T, T, dtype=q.dtype, device=q.device).masked_fill_(future, float("-inf"))
    q = q * D**-0.5
    out, scale = [], 1.0
    for b in range(0, B, rows):
        qb, kb, vb = (t[b : b + rows].flatten(0, 1) for t in (q, k, v))  # (rows * H, T, D)
        weights = torch.baddbmm(hidden, qb, kb.transpose(1, 2)).softmax(-1)
        keep, scale = keep_mask(weights.shape, p, q.device)
        out.append(torch.bmm(weights * keep, vb))
    return torch.cat(out).view(B, H, T, D) * scale


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is None and self.training and self.dropout > 0 and x.device.type == "cpu":
            y = causal_attention_dropout_cpu(q, k, v, self.dropout)
        elif cache is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            start = cache.length
            cache.buffer[layer, 0, :, :, start : start + T] = k
            cache.buffer[layer, 1, :, :, start : start + T] = v
            k = cache.buffer[layer, 0, :, :, : start + T]
            v = cache.buffer[layer, 1, :, :, : start + T]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.fc_out = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.drop = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), cache, layer, mask))
        return x + self.drop(self.fc_out(F.gelu(self.fc(self.ln_2(x)))))


class DrumTransformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: fewer parameters, better NLL
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("proj.weight", "fc_out.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.pos_emb.weight.numel()

    def forward(
        self,
        idx: torch.Tensor,  # (B, T) token ids
        cache: KVCache | None = None,
        prefix_mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, vocab). With a cache, the T tokens fill the slots from cache.length on,
        and row b's positions count from its first real slot, cache.pad[b].

        prefix_mix = (slots (B,), weights (B, vocab)): row b's embedding at position slots[b]
        becomes weights[b] @ token embeddings, which is how a request blends styles.
        """
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if cache is not None and start + T > cache.capacity:
            raise ValueError(f"{start + T} slots exceed the cache's {cache.capacity}")
        pad = 0 if cache is None or cache.pad is None else int(cache.pad.min())
        if start + T - pad > self.config.block_size:
            raise ValueError(f"sequence of {start + T - pad} tokens exceeds block size {self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        if cache is not None and cache.pad is not None:
            pos = (pos[None, :] - cache.pad[:, None]).clamp(min=0)  # (B, T)
        x = self.tok_emb(idx)  # (B, T, C)
        if prefix_mix is not None:
            slots, weights = prefix_mix
            x = x.clone()
            x[torch.arange(B, device=x.device), slots - start] = weights.to(x.dtype) @ self.tok_emb.weight
        x = self.drop(x + self.pos_emb(pos))
        mask = None if cache is None else cache.key_mask(T)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, mask)
        if cache is not None:
            cache.length += T
        return self.head(self.ln_f(x))

    def new_cache(self, batch: int, length: int | None = None, pad: torch.Tensor | None = None,
                  buffer: torch.Tensor | None = None) -> KVCache:
        """A cache of `length` slots (default the block size; more lets rows that are padded
        keep going, each within the block size of its own positions), in `buffer` if given."""
        p = self.tok_emb.weight
        return KVCache(self.config, batch, length or self.config.block_size, p.device, p.dtype, pad, buffer)

    # --- the fast path for sampling ------------------------------------------------------------
    @torch.inference_mode()
    def step(self, idx: torch.Tensor, cache: KVCache, vocab: int | None = None) -> torch.Tensor:
        """Logits (B, vocab) for one new token per row: `forward(idx[:, None], cache)[:, -1]`.

        The same arithmetic, arranged for sampling on a CPU, where a one-token step is bound by
        per-op overhead and by streaming ~10 MB of weights from memory, not by FLOPs:
        weights pre-transposed to (in, out) so each matmul reads them row after row (about 1.8x
        faster than torch's (out, in) linear when they are not in cache), fetched from a list
        (not through nn.Module lookups), no (B, 1, C) views, no mask unless rows are padded,
        the residual adds fused into addmm, keys and values written with one copy, and with
        `vocab` logits only for the first `vocab` ids (those a sampler can ever pick).
        tests/daemon/test_model.py checks it against `forward`.
        """
        B, C, H = idx.shape[0], self.config.n_embd, self.config.n_head
        start = cache.length
        if start >= cache.capacity or (cache.pad is None and start >= self.config.block_size):
            raise ValueError(f"slot {start} is past the cache or the block size")
        layers, (ln_w, ln_b, tok, pos_emb, head_t) = self._step_weights()
        pos = start if cache.pad is None else (start - cache.pad).clamp(min=0)
        x = tok.index_select(0, idx) + pos_emb[pos]  # (B, C)
        mask = None if cache.visible is None else cache.visible[..., : start + 1]
        for kv, (ln1_w, ln1_b, qkv_t, proj_t, ln2_w, ln2_b, fc_t, fc_out_t) in zip(cache.layers, layers):
            qkv = torch.layer_norm(x, (C,), ln1_w, ln1_b) @ qkv_t  # (B, 3C)
            kv.select(3, start).copy_(qkv[:, C:].view(B, 2, H, C // H).transpose(0, 1))
            k, v = kv.narrow(3, 0, start + 1)  # (B, H, start + 1, head_dim) each
            y = F.scaled_dot_product_attention(qkv[:, :C].view(B, H, 1, C // H), k, v, attn_mask=mask)
            x = torch.addmm(x, y.view(B, C), proj_t)
            h = F.gelu(torch.layer_norm(x, (C,), ln2_w, ln2_b) @ fc_t)
            x = torch.addmm(x, h, fc_out_t)
        cache.length += 1
        x = torch.layer_norm(x, (C,), ln_w, ln_b)
        return x @ head_t if vocab is None else x @ head_t[:, :vocab]

    @torch.inference_mode()
    def step_at(self, idx: torch.Tensor, slot: torch.Tensor, pad: torch.Tensor, buffer: torch.Tensor,
                vocab: int | None = None) -> torch.Tensor:
        """step() with every shape fixed, so that one CUDA graph can replay it at any slot
        (daemon/cuda_graphs.py): the slot to fill (`slot`, shape (1,)) and each row's padding
        (`pad`, (B,)) are tensors, and each row attends to every slot of `buffer` (a KVCache's),
        masked to its filled ones. Reading every slot (576 for the shipped model) where step()
        reads the filled ones costs nothing on a GPU, where a step's time is its ~58 kernels'
        fixed costs. Attention is three plain kernels: for one masked fp32 query SDPA picks its
        memory-efficient kernel, which took 65 µs a layer on an H200, 2/3 of the step. Unfilled
        slots must hold finite numbers (GraphedSteps.cache zeroes them): a NaN would reach real
        rows through a zero attention weight. tests/daemon/test_model.py checks it against step()."""
        B, C, H = idx.shape[0], self.config.n_embd, self.config.n_head
        S, D = buffer.shape[4], C // H
        layers, (ln_w, ln_b, tok, pos_emb, head_t) = self._step_weights()
        slots = torch.arange(S, device=idx.device)
        visible = (slots <= slot) & (slots >= pad[:, None])  # (B, S)
        hidden = torch.where(visible, 0.0, float("-inf")).to(tok.dtype)  # added to the scores
        hidden = hidden[:, None, None].expand(B, H, 1, S).reshape(B * H, 1, S)
        x = tok.index_select(0, idx) + pos_emb.index_select(0, (slot - pad).clamp(min=0))  # (B, C)
        for kv, (ln1_w, ln1_b, qkv_t, proj_t, ln2_w, ln2_b, fc_t, fc_out_t) in zip(buffer.unbind(0), layers):
            qkv = torch.layer_norm(x, (C,), ln1_w, ln1_b) @ qkv_t  # (B, 3C)
            kv.index_copy_(3, slot, qkv[:, C:].view(B, 2, H, 1, D).transpose(0, 1))
            k, v = kv.flatten(1, 2)  # (B * H, S, D) each
            scores = torch.baddbmm(hidden, qkv[:, :C].reshape(B * H, 1, D), k.transpose(1, 2), alpha=D**-0.5)
            y = torch.bmm(scores.softmax(-1), v)  # (B * H, 1, D)
            x = torch.addmm(x, y.view(B, C), proj_t)
            h = F.gelu(torch.layer_norm(x, (C,), ln2_w, ln2_b) @ fc_t)
            x = torch.addmm(x, h, fc_out_t)
        x = torch.layer_norm(x, (C,), ln_w, ln_b)
        return x @ head_t if vocab is None else x @ head_t[:, :vocab]

    _step_cache: tuple | None = None  # (source parameters, their versions, weights) for step()

    def _step_weights(self) -> tuple:
        """Weights for step(): norms and embeddings as they are, matmul weights as transposed
        copies, remade when a source parameter was changed in place (its version moved) or
        moved by .to() and the like (see _apply)."""
        if self._step_cache is not None:
            sources, versions, weights = self._step_cache
            if all(p._version == v for p, v in zip(sources, versions)):
                return weights
        sources = [w for b in self.blocks for w in (b.attn.qkv.weight, b.attn.proj.weight, b.fc.weight, b.fc_out.weight)]
        sources.append(self.head.weight)
        with torch.no_grad():
            t = iter([w.t().contiguous() for w in sources])
            layers = [(b.ln_1.weight, b.ln_1.bias, next(t), next(t), b.ln_2.weight, b.ln_2.bias, next(t), next(t))
                      for b in self.blocks]
            weights = layers, (self.ln_f.weight, self.ln_f.bias, self.tok_emb.weight, self.pos_emb.weight, next(t))
        self._step_cache = (sources, [p._version for p in sources], weights)
        return weights

    def _apply(self, fn, recurse=True):  # .to(), .double(), ... give parameters new storage
        self._step_cache = None
        return super()._apply(fn, recurse)

    def flops_per_token(self, context: int, vocab: int | None = None) -> int:
        """FLOPs (2 per multiply-add) of one token attending to `context` positions (itself
        included): the weight matmuls, QK^T and AV, and a head over `vocab` ids (default all).
        Norms, GELU and softmax are O(C) per token and left out."""
        c = self.config
        weights = 2 * c.n_layer * 12 * c.n_embd**2 + 2 * c.n_embd * (vocab or c.vocab_size)
        attention = 2 * 2 * c.n_layer * context * c.n_embd
        return weights + attention
