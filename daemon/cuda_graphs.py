"""The decode step on a GPU, replayed from CUDA graphs.

A one-token step of the drummer is ~58 kernels of 1-5 µs each. Launched one by one from eager
PyTorch they cost more than they run: 0.89 ms a token on an H200, no faster than the CPU. A CUDA
graph launches them all at once: 0.22 ms a token, 4 bars in about 40 ms (docs/model.md).

A graph replays the exact kernels and memory it was captured with, hence:
- `DrumTransformer.step_at`: the step with fixed shapes; the slot and the padding are inputs.
- One graph per batch size, captured on first use and kept until the buffer grows or the
  weights change. All graphs share one memory pool: they never run at once, and each keeps
  its logits alive.
- The KV cache lives in one buffer kept across calls. A call's cache is its leading rows, zeroed,
  and stays those as rows finish (`KVCache.keep` moves rows within the same memory).
- A step's inputs go to the GPU, and its logits come back, through pinned host buffers, and both
  copies are part of the graph: a step is one replay and one wait. Launched on their own, the
  copies took 17 µs each on the H200 (from pageable memory 31). Side by side in one process,
  4 bars took 36.7 ms against 40.7 with the same notes; across benchmark runs on fresh machines
  the gain is inside the noise (docs/model.md). The logits `step()` returns are such a buffer:
  read them before the next step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from daemon.model import DrumTransformer, KVCache


@dataclass
class _Graph:
    """One captured step: the graph copies its inputs in from `host_inputs`, runs the step and
    copies its logits out to `host_logits`. The GPU tensors are kept so their memory stays theirs."""

    graph: torch.cuda.CUDAGraph
    inputs: torch.Tensor  # (2B + 1,) on the GPU: B token ids, the slot, B paddings
    logits: torch.Tensor  # (B, vocab) on the GPU
    host_inputs: torch.Tensor  # pinned twins of the two
    host_logits: torch.Tensor
    staged: np.ndarray = field(init=False)  # host_inputs as numpy, written from Python ints

    def __post_init__(self) -> None:
        self.staged = self.host_inputs.numpy()


class GraphedSteps:
    """`DrumTransformer.step` for a GPU: make the cache with `cache()`, then `step()` per token."""

    def __init__(self, model: DrumTransformer, capacity: int, vocab: int) -> None:
        self.model, self.capacity, self.vocab = model, capacity, vocab
        # Every CUDA call below names the model's device: on any other than the current one a
        # capture would record nothing, and each replay would return the same stale logits.
        self.device = model.tok_emb.weight.device
        self.stream = torch.cuda.Stream(self.device)  # captures run here, not on a shared default
        self.pool = torch.cuda.graph_pool_handle()
        self.storage: torch.Tensor | None = None  # (layers, 2, rows, heads, capacity, head_dim)
        self.graphs: dict[int, _Graph] = {}  # batch size -> its graph, bound to `storage` and the weights
        self._weights: tuple | None = None  # the model's step weights the graphs read
        self._pad: tuple[torch.Tensor | None, list[int]] = (None, [])  # the cache.pad last copied, as ints

    def cache(self, batch: int, pad: torch.Tensor | None = None) -> KVCache:
        """A KVCache over the first `batch` rows of the kept buffer, zeroed (step_at reads every
        slot: a non-finite number an earlier call left would reach this one). The buffer grows,
        to a power of two rows, dropping the graphs bound to the old one, when a call needs more."""
        if self.storage is None or self.storage.shape[2] < batch:
            self.graphs.clear()
            self.storage = None  # free the old buffer before taking a bigger one
            c, p = self.model.config, self.model.tok_emb.weight
            shape = (c.n_layer, 2, 1 << (batch - 1).bit_length(), c.n_head, self.capacity, c.n_embd // c.n_head)
            self.storage = torch.empty(shape, device=self.device, dtype=p.dtype)
        rows = self.storage[:, :, :batch]
        rows.zero_()
        return self.model.new_cache(batch, self.capacity, pad, buffer=rows)

    def step(self, tokens: list[int], cache: KVCache) -> torch.Tensor:
        """Logits (B, vocab) for one new token per row, as `model.step(tokens, cache, vocab)`, in
        host memory that the next step overwrites."""
        batch, start = len(tokens), cache.length
        if self.storage is None or cache.buffer.data_ptr() != self.storage.data_ptr() \
                or cache.buffer.shape[2] != batch or cache.capacity != self.capacity:
            raise ValueError("the cache is not this GraphedSteps' own (make it with cache())")
        if cache.pad is not self._pad[0] or len(self._pad[1]) != batch:  # changes when rows finish or slide
            self._pad = (cache.pad, [0] * batch if cache.pad is None else cache.pad.tolist())
        pad = self._pad[1]
        if (weights := self.model._step_weights()) is not self._weights:  # remade when parameters change
            self.graphs.clear()
            self._weights = weights
        if start >= self.capacity or start - min(pad) >= self.model.config.block_size:
            raise ValueError(f"slot {start} is past the cache or the block size")  # a bad index on a GPU kills the process
        inputs = [*tokens, start, *pad]
        with torch.cuda.device(self.device):
            graph = self.graphs.get(batch) or self._capture(batch, inputs, cache)
            graph.staged[:] = inputs  # the last replay is done: it was waited for
            graph.graph.replay()
            torch.cuda.current_stream(self.device).synchronize()
        cache.length += 1
        return graph.host_logits

    def _capture(self, batch: int, inputs: list[int], cache: KVCache) -> _Graph:
        """Capture the step for `batch` rows, its two copies included. The warm-up (cuBLAS picks
        its kernels outside the capture) runs the real step, writing the keys and values the
        replay will write again."""
        host_inputs = torch.tensor(inputs).pin_memory()
        staged = host_inputs.to(self.device)
        idx, slot, pad = staged[:batch], staged[batch : batch + 1], staged[batch + 1 :]
        main = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(main)
        with torch.cuda.stream(self.stream):
            warm = self.model.step_at(idx, slot, pad, cache.buffer, self.vocab)
        main.wait_stream(self.stream)
        host_logits = torch.empty(warm.shape, dtype=warm.dtype, pin_memory=True)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the daemon's network thread may copy weights from the GPU meanwhile
        # (a learned style's fingerprint), which a global capture mode would refuse.
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
            staged.copy_(host_inputs, non_blocking=True)
            logits = self.model.step_at(idx, slot, pad, cache.buffer, self.vocab)
            host_logits.copy_(logits, non_blocking=True)
        self.graphs[batch] = _Graph(graph, staged, logits, host_inputs, host_logits)
        return self.graphs[batch]
