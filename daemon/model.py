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
    """Keys and values for every layer, allocated once per generation call.

    Growing tensors with torch.cat each step costs an allocation and a copy per layer
    per token; writing into a slice of a fixed buffer costs neither.
    """

    def __init__(self, config: ModelConfig, batch: int, length: int, device, dtype) -> None:
        head_dim = config.n_embd // config.n_head
        shape = (config.n_layer, 2, batch, config.n_head, length, head_dim)
        self.buffer = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled so far
        # Rows of different lengths are left-padded: row b's first pad[b] slots are not attended
        # to, and its positions count from its first real token. None when no row is padded.
        self.pad: torch.Tensor | None = None

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

    def reorder(self, index: torch.Tensor) -> None:
        """Keep only the batch rows in `index` (used when the batch is expanded for guidance)."""
        self.buffer = self.buffer.index_select(2, index)
        if self.pad is not None:
            self.pad = self.pad.index_select(0, index)


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
        if cache is None:
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
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), cache, layer, mask))
        return x + self.drop(self.fc_out(F.gelu(self.fc(self.ln_2(x)))))


class DrumTransformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
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
        """Logits (B, T, vocab). With a cache, positions continue from cache.length.

        prefix_mix = (slots (B,), weights (B, vocab)): row b's embedding at position slots[b]
        becomes weights[b] @ token embeddings, which is how a request blends styles.
        """
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block size {self.config.block_size}")
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

    def new_cache(self, batch: int, length: int | None = None) -> KVCache:
        p = self.tok_emb.weight
        return KVCache(self.config, batch, length or self.config.block_size, p.device, p.dtype)

    def flops_per_token(self, context: int) -> int:
        """Multiply-adds x2 of one forward token at a given context length (weights + attention)."""
        c = self.config
        weights = 2 * (c.n_layer * 12 * c.n_embd**2 + c.n_embd * c.vocab_size)
        attention = 2 * 2 * c.n_layer * context * c.n_embd
        return weights + attention
