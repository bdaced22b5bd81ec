"""GraphedSteps: decode steps replayed from CUDA graphs, against the eager step and the CPU.

They need a GPU. CI has none, so they skip there; they run where a GPU is lent.
"""

from __future__ import annotations

import pytest
import torch

from daemon import checkpoint
from daemon.cuda_graphs import GraphedSteps
from daemon.generate import Generator, GrooveRequest

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ATOL = 1e-4  # float32 logits of O(10) after a different summation order


@pytest.fixture(scope="module")
def model():
    model, _, _ = checkpoint.load(checkpoint.BUNDLED, "cuda")
    return model


def prefilled(model, graphed: GraphedSteps, pads: list[int]):
    """The same left-padded contexts in a graphed cache and an eager one."""
    g = torch.Generator().manual_seed(0)
    pad = torch.tensor(pads, device="cuda")
    idx = torch.randint(0, 1000, (len(pads), 20), generator=g).cuda()
    graphed_cache, eager = graphed.cache(len(pads), pad), model.new_cache(len(pads), graphed.capacity, pad=pad)
    with torch.inference_mode():
        model(idx, graphed_cache), model(idx, eager)
    return graphed_cache, eager


def test_replayed_steps_equal_eager_steps_as_rows_finish(model):
    graphed = GraphedSteps(model, 576, 1000)
    cache, eager = prefilled(model, graphed, [0, 5, 0, 12])
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for t in range(40):
            if t == 25:
                for c in (cache, eager):
                    c.keep([0, 2])
            tokens = torch.randint(0, 1000, (cache.buffer.shape[2],), generator=g).tolist()
            got = graphed.step(tokens, cache).clone()
            want = model.step(torch.tensor(tokens, device="cuda"), eager, 1000)
            torch.testing.assert_close(got, want.cpu(), atol=ATOL, rtol=0)
    assert sorted(graphed.graphs) == [2, 4] and cache.length == eager.length == 60
    graphed.storage.fill_(float("nan"))  # keys an earlier call left, gone bad, must not reach a later one
    for pads, captured in (([0, 3], [2, 4]), ([0, 0, 3, 0, 1], [5])):  # the same buffer, then a bigger one
        again, eager = prefilled(model, graphed, pads)
        tokens = list(range(1, len(pads) + 1))
        with torch.inference_mode():
            got = graphed.step(tokens, again).clone()
            want = model.step(torch.tensor(tokens, device="cuda"), eager, 1000)
        torch.testing.assert_close(got, want.cpu(), atol=ATOL, rtol=0)
        assert again.buffer.data_ptr() == graphed.storage.data_ptr() and sorted(graphed.graphs) == captured
    assert graphed.storage.shape[2] == 8


def test_refuses_a_foreign_cache_and_a_step_past_the_block(model):
    graphed = GraphedSteps(model, 576, 1000)
    with torch.inference_mode(), pytest.raises(ValueError, match="own"):
        graphed.step([1], model.new_cache(1, 576))
    cache = graphed.cache(1)
    cache.length = model.config.block_size  # an unpadded row at the block's end
    with torch.inference_mode(), pytest.raises(ValueError, match="block size"):
        graphed.step([1], cache)


def test_a_weight_change_is_captured_again(model):
    """A graph reads the weights it was captured with; changing them in place must not leave it stale."""
    local, _, _ = checkpoint.load(checkpoint.BUNDLED, "cuda")
    graphed = GraphedSteps(local, 576, 1000)
    cache, eager = prefilled(local, graphed, [0])
    with torch.inference_mode():
        graphed.step([7], cache), local.step(torch.tensor([7], device="cuda"), eager, 1000)
        with torch.no_grad():
            local.blocks[0].fc.weight.mul_(1.5)
        got = graphed.step([9], cache).clone()
        want = local.step(torch.tensor([9], device="cuda"), eager, 1000)
    torch.testing.assert_close(got, want.cpu(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kw", [
    dict(style="funk", bars=4, variations=8),
    dict(style="jazz", bars=16, meter=(3, 4)),  # past the block: windows slide, the cache shifts
    dict(style={"rock": 0.6, "latin": 0.4}, bars=2, guidance=1.5, focus=2),
])
def test_the_gpu_plays_the_cpu_notes(kw):
    """Same request and seed, same notes on either device (a draw could flip only within float
    rounding of a boundary)."""
    cpu, gpu = Generator.load(device="cpu"), Generator.load(device="cuda")
    assert gpu.graphed is not None
    for seed in (1, 2):
        request = GrooveRequest(seed=seed, **kw)
        assert gpu.generate([request]) == cpu.generate([request])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_a_gpu_that_is_not_the_current_device_plays_the_cpu_notes():
    """Graphs capture on the model's own device: on another, a capture would record nothing."""
    request = GrooveRequest(style="funk", bars=2, variations=3, seed=5)
    assert Generator.load(device="cuda:1").generate([request]) == Generator.load(device="cpu").generate([request])
