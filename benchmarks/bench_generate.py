"""How fast `Generator.generate` is, and where its time goes.

    .venv/bin/python benchmarks/bench_generate.py            # the tables (medians of --runs)
    .venv/bin/python benchmarks/bench_generate.py --profile  # one decode step, part by part
    .venv/bin/python benchmarks/bench_generate.py --device cuda        # on a GPU: steps replayed from CUDA graphs
    .venv/bin/python benchmarks/bench_generate.py --device cuda --eager  # the same without the graphs
    .venv/bin/python benchmarks/bench_generate.py --onednn   # on a CPU, GELU through oneDNN, torch's default

The table: 4 bars x 1 and x 8 variations, 16 bars x 1 and 4 bars x 1 at focus 2 (two takes,
scored, the more typical kept), with tokens per pattern, ms per
token (wall time / longest row's tokens, i.e. per decode step), the FLOPs a pattern costs
(DrumTransformer.flops_per_token summed over the real contexts, prefill included) and the
FLOP rate that achieves, against this machine's rate on one large matmul measured here.
With Hugging Face transformers installed (`pip install -e '.[bench]'`; never a dependency of
the product), the same run times `GPT2LMHeadModel.generate` on a GPT-2 of our model's shape
(layers, heads, width, vocabulary, context) sampling the same number of tokens per pattern
with top-p and its KV cache, on the same threads: plain sampling, no grammar, no notes.
Then the same requests end to end, as Live makes them: a `drumigen serve` subprocess on the
bundled model, the Remote Script's stdlib client, msgpack over a real ZeroMQ socket.
Timings on a shared machine are noisy: every figure is a median, and the cases run
interleaved so that a burst of load hits all of them alike.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon import generate as gen  # noqa: E402
from daemon.generate import Generator, GrooveRequest  # noqa: E402
from daemon.grammar import BarState  # noqa: E402
from daemon.vocab import SLOTS  # noqa: E402

CASES = {
    "4 bars x 1": dict(bars=4, variations=1),
    "4 bars x 8": dict(bars=4, variations=8),
    "16 bars x 1": dict(bars=16, variations=1),
    "4 bars x 1, focus 2": dict(bars=4, variations=1, focus=2),
}
NOT_IN_HF = ("16 bars x 1", "4 bars x 1, focus 2")  # the HF comparison times plain sampling of the same tokens


def matmul_rate(threads: int, n: int = 1024, runs: int = 10) -> float:
    """FLOP/s of one large float32 matmul on `threads` threads: the most this CPU does with
    torch's BLAS (the best of `runs`, so a burst of load elsewhere does not hide it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        return 2 * n**3 / min(_timed(lambda: a @ b) for _ in range(runs))
    finally:
        torch.set_num_threads(before)


def gpu_matmul_rate(n: int = 8192, runs: int = 10) -> float:
    """FLOP/s of one large float32 matmul on the GPU, as the model runs (no TF32)."""
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    a @ b
    return 2 * n**3 / min(_timed(lambda: a @ b, gpu=True) for _ in range(runs))


def _timed(fn, gpu: bool = False) -> float:
    t = time.perf_counter()
    fn()
    if gpu:
        torch.cuda.synchronize()  # what was queued on the GPU is part of the time
    return time.perf_counter() - t


def pattern_flops(g: Generator, ids: list[int], block_size: int, focus: int) -> int:
    """FLOPs of generating `ids` after the prefix: the prefill's tokens, then one decode step
    per sampled token (the last sampled token, the closing Bar, is never fed back); with focus,
    the teacher-forced pass that scores the take without its style (Generator._typicality)."""
    model, n = g.model, len(SLOTS)
    flops = sum(model.flops_per_token(t + 1) for t in range(n))  # prefill: full-vocabulary head
    for t in range(n, n + len(ids)):
        flops += model.flops_per_token(min(t, block_size) + 1, g.table.size)
    if focus > 1:
        flops += sum(model.flops_per_token(t + 1, g.table.size) for t in range(min(n + len(ids), block_size)))
    return flops


def hf_twin(g: Generator):
    """A randomly initialised GPT-2 with our model's shape, or None without transformers."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    c = g.model.config
    config = GPT2Config(vocab_size=len(g.vocab), n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                        n_head=c.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval().to(g.device)


def hf_generate(twin, tokens: int, variations: int, seed: int) -> None:
    """`tokens` sampled tokens per pattern after a prompt as long as our prefix."""
    torch.manual_seed(seed)
    prompt = torch.zeros((1, len(SLOTS)), dtype=torch.long, device=twin.device)
    with torch.inference_mode():
        twin.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_p=0.95,
                      max_new_tokens=tokens, min_new_tokens=tokens, num_return_sequences=variations,
                      pad_token_id=0, use_cache=True)


def run_table(g: Generator, runs: int, seed: int) -> None:
    decode_threads = g.threads or torch.get_num_threads()
    on_gpu = g.device.type == "cuda"
    rates = {0: gpu_matmul_rate()} if on_gpu else \
        {t: matmul_rate(t) for t in sorted({1, torch.get_num_threads(), decode_threads})}
    rate = rates[0 if on_gpu else decode_threads]
    times: dict[str, list[float]] = defaultdict(list)
    shapes: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (longest, mean tokens, flops)
    captured: list = []
    real_patterns = g._patterns

    def capture(request, takes):  # each case is one request: its takes are the batch's rows
        captured[:] = [r.state.ids for r in takes]
        return real_patterns(request, takes)

    g._patterns = capture
    twin, hf_times = hf_twin(g), defaultdict(list)
    for name, kw in CASES.items():  # warm up every path once
        g.generate([GrooveRequest(seed=seed, style="funk", **kw)])
        if twin is not None:
            if name not in NOT_IN_HF:
                hf_generate(twin, 8, kw["variations"], seed)
    threads = torch.get_num_threads()
    for i in range(runs):
        for name, kw in CASES.items():
            request = GrooveRequest(seed=seed + 100 * i, style="funk", **kw)
            times[name].append(_timed(lambda: g.generate([request]), on_gpu))
            lengths = [len(ids) + 1 for ids in captured]  # + the closing Bar that was sampled
            flops = sum(pattern_flops(g, ids, g.block_size, kw.get("focus", 1)) for ids in captured)
            shapes[name].append((max(lengths), statistics.mean(lengths), flops))
            if twin is not None and name not in NOT_IN_HF:  # the same tokens, HF's way, on the same threads
                torch.set_num_threads(decode_threads)
                hf_times[name].append(_timed(lambda: hf_generate(twin, max(lengths), kw["variations"], seed + i),
                                             on_gpu))
                torch.set_num_threads(threads)
    g._patterns = real_patterns

    if on_gpu:
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, decode steps "
              f"{'replayed from CUDA graphs' if g.graphed else 'eager'}; medians of {runs} runs")
        print(f"large matmul (8192^3, float32, no TF32): {rate / 1e12:.1f} TFLOP/s on the GPU\n")
    else:
        print(f"torch {torch.__version__}; torch threads {torch.get_num_threads()}, decoding on {decode_threads}; "
              f"medians of {runs} runs")
        print("large matmul (1024^3, float32): " + ", ".join(
            f"{r / 1e9:.1f} GFLOP/s on {t} thread{'s' if t > 1 else ''}" for t, r in rates.items()) + "\n")
    head = f"{'case':19} {'median ms':>9} {'min ms':>7} {'tokens/pattern':>14} {'ms/token':>8} " \
           f"{'MFLOP/pattern':>13} {'GFLOP/s':>8} {'of matmul':>9}"
    print(head)
    print("-" * len(head))
    one = statistics.median(times["4 bars x 1"])
    for name in CASES:
        t = statistics.median(times[name])
        longest = statistics.median(s[0] for s in shapes[name])
        mean_tokens = statistics.median(s[1] for s in shapes[name])
        flops = statistics.median(s[2] for s in shapes[name])
        variations = CASES[name]["variations"]
        achieved = flops / t
        print(f"{name:19} {t * 1e3:9.1f} {min(times[name]) * 1e3:7.1f} {mean_tokens:14.0f} "
              f"{t * 1e3 / longest:8.2f} {flops / variations / 1e6:13.1f} {achieved / 1e9:8.2f} "
              f"{achieved / rate:9.1%}")
    print(f"\n8 variations / 1: {statistics.median(times['4 bars x 8']) / one:.2f}x "
          "(ms/token divides by the longest row, which sets the number of steps)")
    if twin is None:
        print("(transformers is not installed: no Hugging Face comparison)")
        return
    import transformers

    where = torch.cuda.get_device_name() if on_gpu else f"{decode_threads} thread(s)"
    print(f"\nHugging Face transformers {transformers.__version__}, GPT2LMHeadModel.generate, same shape, "
          f"same tokens, top-p 0.95, KV cache, {where}:")
    for name, hf in hf_times.items():
        ours, theirs = statistics.median(times[name]), statistics.median(hf)
        print(f"{name:12} HF median {theirs * 1e3:7.1f} ms, ours {ours * 1e3:7.1f} ms: ours is {theirs / ours:.2f}x faster")


def run_profile(g: Generator, runs: int, seed: int) -> None:
    """Wall time per generate() split into its parts, per decode step."""
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def wrap(owner, attr, label):
        real = getattr(owner, attr)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                if g.device.type == "cuda":
                    torch.cuda.synchronize()  # a part's time includes the GPU work it queued
                spent[label] += time.perf_counter() - t
                calls[label] += 1

        setattr(owner, attr, timed)
        return real

    undo = [
        (g, "_step", wrap(g, "_step", "decode step (forward)")),
        (g, "_prefill", wrap(g, "_prefill", "prefill (prefix forward)")),
        (g.table, "allowed", wrap(g.table, "allowed", "grammar: allowed ids")),
        (gen, "sample_top_p", wrap(gen, "sample_top_p", "top-p draw")),
        (BarState, "advance", wrap(BarState, "advance", "grammar: advance state")),
        (g, "_patterns", wrap(g, "_patterns", "tokens -> notes, focus")),
    ]
    for name, kw in CASES.items():
        if name == "16 bars x 1":
            continue
        g.generate([GrooveRequest(seed=seed, style="funk", **kw)])
        spent.clear(), calls.clear()
        total = []
        for i in range(runs):
            request = GrooveRequest(seed=seed + i, style="funk", **kw)
            total.append(_timed(lambda: g.generate([request])))
        steps = calls["decode step (forward)"] / runs
        whole = sum(total) / runs
        print(f"\n{name}: {whole * 1e3:.1f} ms mean per generate(), {steps:.0f} decode steps")
        print(f"  {'part':30} {'ms/run':>7} {'us/step':>8} {'share':>6}")
        for label in spent:
            per_run = spent[label] / runs
            print(f"  {label:30} {per_run * 1e3:7.1f} {per_run / steps * 1e6:8.1f} {per_run / whole:6.1%}")
        rest = whole - sum(spent.values()) / runs
        print(f"  {'rest (loop, batching, numpy)':30} {rest * 1e3:7.1f} {rest / steps * 1e6:8.1f} {rest / whole:6.1%}")
    for owner, attr, real in undo:
        if owner is BarState or owner is gen:
            setattr(owner, attr, real)
        else:
            delattr(owner, attr) if attr in vars(owner) else None

    if g.device.type == "cuda":
        return
    # One decode step, op by op, with torch's profiler.
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(g.threads or torch.get_num_threads())
    torch.backends.mkldnn.enabled = g.onednn  # as generate() samples
    with torch.inference_mode():
        cache = g.model.new_cache(1)
        g.model(torch.randint(0, g.table.size, (1, 100)), cache)
        tok = torch.tensor([5])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(100):
                cache.length = 100
                g.model.step(tok, cache, g.table.size)
    print(f"\nmodel.step at batch 1, context 100, {torch.get_num_threads()} thread(s), per op (torch.profiler, 100 steps):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def run_daemon(runs: int, seed: int, device: str) -> None:
    """CASES through a real daemon and socket; what a producer waits for, minus Live's own tick.
    The daemon's log says how long each batch took inside it (the model worker's generate and
    wire encoding): the rest of a round trip is the socket, msgpack and the hand-offs between
    the daemon's threads."""
    from benchmarks.bench_daemon import cold_start
    from shared.client import DaemonClient
    from tests.support import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    times: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "daemon.log"
        proc, _ = cold_start(endpoint, log, device)
        try:
            with DaemonClient(endpoint, timeout=60, retries=0) as client:
                for kw in CASES.values():  # warm up every path once
                    client.call("generate", style="funk", seed=seed, **kw)
                for i in range(runs):
                    for name, kw in CASES.items():
                        started = time.perf_counter()
                        reply = client.call("generate", style="funk", seed=seed + 100 * i, packed=True, **kw)
                        times[name].append(time.perf_counter() - started)
                        if not reply.ok:
                            raise SystemExit(f"daemon refused {name}: {reply.error_code} {reply.error_message}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        inside = [float(m) / 1e3 for m in re.findall(r"in one batch in ([0-9.]+) ms", log.read_text())][len(CASES):]
    print(f"\nend to end through `drumigen serve --device {device}` (ZeroMQ + msgpack, packed notes), "
          f"medians of {runs} runs; inside: the daemon's own time for the batch, from its log:")
    for c, (name, t) in enumerate(times.items()):
        worker = inside[c :: len(CASES)]
        print(f"{name:19} {statistics.median(t) * 1e3:9.1f} ms (min {min(t) * 1e3:.1f}), inside "
              f"{statistics.median(worker) * 1e3:.1f} ms; the rest of each round trip: median "
              f"{statistics.median(a - b for a, b in zip(t, worker)) * 1e3:.1f} ms")
    print(f"8 variations / 1: {statistics.median(times['4 bars x 8']) / statistics.median(times['4 bars x 1']):.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=25)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads, as a daemon sets them (default 2)")
    p.add_argument("--decode-threads", type=int, help="Generator.threads while sampling "
                   f"(default {Generator.threads}; 0 = use torch's setting)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="break one generate() down instead")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    p.add_argument("--eager", action="store_true", help="on a GPU, eager steps instead of CUDA graphs "
                   "(in process only: the daemon always replays graphs)")
    p.add_argument("--onednn", action="store_true", help="on a CPU, sample with oneDNN on, torch's default "
                   "(in process only; Generator.onednn says why it is off)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    g = Generator.load(device=args.device)
    print(f"Generator.load: {(time.perf_counter() - started) * 1e3:.0f} ms")
    if args.eager:
        g.graphed = None
    g.onednn = args.onednn
    if args.decode_threads is not None:
        g.threads = args.decode_threads or None
    if args.profile:
        run_profile(g, args.runs, args.seed)
        return
    run_table(g, args.runs, args.seed)
    if not (args.eager or args.onednn):
        run_daemon(args.runs, args.seed, args.device)


if __name__ == "__main__":
    main()
