"""Training, top to bottom: data, model, AdamW with warm-up and cosine decay, validation, checkpoints.

Single process on CPU or one GPU: `drumigen train`. Several GPUs: the same command under
torchrun (`torchrun --nproc_per_node=N -m daemon.cli train ...`); DDP is switched on by the
environment torchrun sets, and only rank 0 evaluates and writes checkpoints.

With `teacher`, the same loop distils classifier-free guidance into a model: it starts as a copy
of the teacher and learns, at every position, the distribution guided sampling draws from (the
teacher's logits with the window's prompt, pushed `guidance` times away from its logits with
every prompt slot `any`). Plain sampling of the result then plays as guided sampling of the
teacher did, without guidance's second row per variation; validation picks the checkpoint
closest to the teacher's guided distribution (KL) instead of the one nearest the data (NLL).
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn import functional as F
from tqdm import tqdm

from daemon import checkpoint
from daemon.data import DEFAULT_DATA, WindowSampler, collate, condition_priors, evaluation_windows, load_dataset
from daemon.model import DrumTransformer, ModelConfig
from daemon.vocab import SLOTS, Conditions, Vocabulary

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: Path = DEFAULT_DATA
    out: Path = Path("runs/gmd/model.pt")
    cache_dir: Path = Path(".cache")
    limit_files: int | None = None  # per split; for tests and smoke runs
    # model
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 256
    block_size: int = 384
    dropout: float = 0.2
    # optimisation
    steps: int = 6400
    batch_size: int = 16
    lr: float = 1.5e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    genre_balance: float = 0.5  # 0: genres as often as the data plays them; 1: all genres alike
    rebar: float = 0.2  # the share of 4/4 windows replayed in another meter (daemon/data.py)
    grad_clip: float = 1.0
    # bookkeeping
    eval_every: int = 400
    eval_windows: int | None = None  # None: every validation window
    seed: int = 1337
    device: str = "auto"
    resume: Path | None = None
    threads: int | None = None
    # guidance distillation (module docstring): the checkpoint to learn from, and its guidance
    teacher: Path | None = None
    guidance: float = 1.5

    def __post_init__(self) -> None:
        """Refuse what would crash a run part-way or quietly train nothing."""
        positive = ("n_layer", "n_head", "n_embd", "steps", "batch_size", "warmup", "eval_every")
        bad = [f"{name} {getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        bad += [f"{name} {getattr(self, name)}" for name in ("limit_files", "eval_windows", "threads")
                if getattr(self, name) is not None and getattr(self, name) < 1]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be at least 1")
        # A negative clip turned the gradient round, a negative min-lr the schedule: nonsense trained to exit 0.
        above_0, at_least_0 = ("lr", "grad_clip"), ("min_lr", "weight_decay", "guidance")
        bad = [f"--{name.replace('_', '-')} {value} must be {'above' if name in above_0 else 'at least'} 0"
               for name in above_0 + at_least_0 if not (math.isfinite(value := getattr(self, name))
                                                        and (value > 0 if name in above_0 else value >= 0))]
        if bad:
            raise ValueError("; ".join(bad))
        if self.min_lr > self.lr:
            raise ValueError(f"--min-lr {self.min_lr} is above --lr {self.lr}: the schedule decays from lr to min-lr")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be a multiple of n_head {self.n_head}")
        if self.block_size <= len(SLOTS):
            raise ValueError(f"block_size {self.block_size} leaves no room after the {len(SLOTS)}-token prompt")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)  # ValueError for a name torch does not know
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise ValueError(f"--device {name}: this machine's torch sees no such GPU")
    return device


def lr_at(step: int, cfg: TrainConfig, warm_from: int = 0) -> float:
    """Cosine decay after a linear warm-up from `warm_from`: a run resumed without optimiser
    state (a shipped checkpoint) warms up again, since fresh Adam moments take full-size steps."""
    progress = min(max(step - cfg.warmup, 0) / max(cfg.steps - cfg.warmup, 1), 1.0)
    lr = cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))
    return lr * min((step - warm_from + 1) / cfg.warmup, 1.0)


def make_optimizer(model: DrumTransformer, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


class GuidedTeacher:
    """What guided sampling of a checkpoint draws from, as training targets."""

    def __init__(self, model: DrumTransformer, vocab: Vocabulary, guidance: float) -> None:
        self.model, self.vocab, self.guidance = model.eval(), vocab, guidance
        device = model.tok_emb.weight.device
        self.any_prefix = torch.tensor(vocab.prefix(Conditions()), device=device)  # Generator.uncond_prefix
        self.music = len(vocab.pieces)  # ids a sampler can pick; conditioning ids after them never

    @torch.no_grad()
    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, music ids) log-probabilities: the logits with the window's prompt pushed
        `guidance` times away from those with every slot `any`, over the ids sampling draws
        from (Generator._draw does the same over the grammar's allowed ids). In fp32 even under
        CUDA autocast: bf16 would move the target by a tenth of what distillation leaves."""
        unprompted = x.clone()
        unprompted[:, : len(self.any_prefix)] = self.any_prefix
        with torch.autocast(x.device.type, enabled=False):
            cond, uncond = self.model(torch.cat([x, unprompted]))[..., : self.music].float().chunk(2)
        return torch.log_softmax(uncond + self.guidance * (cond - uncond), -1)


def kl_from(target: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits) over target's ids), summed over the positions that have a next token."""
    kept = y != -1
    target, logp = target[kept], torch.log_softmax(logits[..., : target.shape[-1]].float()[kept], -1)
    return (target.exp() * (target - logp)).sum()


def training_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Mean cross-entropy with the data; with a guided teacher's log-probabilities, the mean KL from them."""
    if target is None:
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
    return kl_from(target, logits, y) / (y != -1).sum()


@torch.no_grad()
def evaluate(model: DrumTransformer, windows: list[list[int]], vocab: Vocabulary, cfg: TrainConfig,
             device: torch.device, teacher: GuidedTeacher | None = None) -> dict:
    """Validation NLL in nats, per token and per note (the PitchDrum pieces of the targets, each
    counted wherever a BPE merge put it), and with a teacher the KL per token from its guided
    distribution."""
    model.eval()
    hits = [sum(piece.startswith("PitchDrum_") for piece in pieces) for pieces in vocab.pieces]
    hits_per_id = torch.tensor(hits + [0] * (len(vocab.names) - len(hits)) + [0], device=device)  # last: y == -1
    total, kl, tokens, notes = 0.0, 0.0, 0, 0
    for i in range(0, len(windows), cfg.batch_size):
        x, y = collate(windows[i : i + cfg.batch_size], cfg.block_size, vocab.pad)
        x, y = x.to(device), y.to(device)
        with autocast(device):
            logits = model(x)
            if teacher is not None:
                kl += kl_from(teacher.log_probs(x), logits, y).item()
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=-1, reduction="sum")
        total += loss.item()
        tokens += (y != -1).sum().item()
        notes += hits_per_id[y].sum().item()  # y == -1 indexes the trailing 0
    model.train()
    metrics = {"nll_token": total / max(tokens, 1), "nll_note": total / max(notes, 1), "tokens": tokens}
    if teacher is not None:
        metrics["kl_token"] = kl / max(tokens, 1)
    return metrics


@contextmanager
def stop_between_steps():
    """While training, Ctrl-C (SIGINT) asks for a stop at the end of the step under way, so the
    run can save where it is (a step cut half-way would leave the weights half-updated); a
    second Ctrl-C stops at once. Yields a function saying whether a stop was asked for. Only the
    main thread can take signals: elsewhere Ctrl-C works as it always does."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield asked.is_set  # (a job started in the background of a shell ignores SIGINT, and goes on doing so)
        return

    def on_interrupt(signum, frame):
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def stopping(asked: bool, ddp: bool, device: torch.device) -> bool:
    """Whether to stop after this step: asked here, or, under torchrun, by any rank, so all stop at
    the same step (torchrun signals each worker in turn; one rank stopping alone left the others
    waiting in their next all-reduce)."""
    if not ddp:
        return asked
    flag = torch.tensor([int(asked)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def autocast(device: torch.device):
    # bf16 on CUDA halves memory traffic; CPU autocast would only slow this small model down.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(cfg: TrainConfig) -> dict:
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    if ddp:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)

    started = time.time()
    if rank == 0:
        checkpoint.check_writable(Path(cfg.out))  # an OSError now, not at the first save minutes in
    teacher, taught_by = None, None
    if cfg.teacher:
        teacher_model, teacher_vocab, teacher_meta = checkpoint.load(Path(cfg.teacher), device)
        teacher = GuidedTeacher(teacher_model, teacher_vocab, cfg.guidance)
        shape = teacher_model.config  # the student is a copy; its windows may be shorter, never longer
        cfg = replace(cfg, n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.n_embd,
                      block_size=min(cfg.block_size, shape.block_size))
        taught_by = {"sha256": checkpoint.sha256(Path(cfg.teacher)), "guidance": cfg.guidance,
                     **{k: teacher_meta.get(k) for k in ("train_config", "history", "objective", "best_val",
                                                          "device", "torch")}}  # where stage 1 ran: bf16 on CUDA
    resumed = checkpoint.load_state(Path(cfg.resume)) if cfg.resume else None
    given_vocab = None if teacher is None else teacher.vocab
    if resumed is not None and resumed["meta"].get("teacher") and teacher is None:
        raise ValueError(f"{cfg.resume} was distilled from a guided teacher: trained on the data from here it "
                         "would lose that, and its checkpoint be overwritten; go on with --teacher (its teacher) "
                         "and --guidance, or train a new model")
    if resumed is not None:  # its weights go on with its own vocabulary and shape, whatever the flags say
        given_vocab = Vocabulary.from_dict(resumed["vocab"])
        if teacher is not None and given_vocab.to_dict() != teacher.vocab.to_dict():
            raise ValueError(f"{cfg.resume} and the teacher {cfg.teacher} have different vocabularies")
        shape = resumed["model_config"]
        ours = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "block_size")}
        if any(ours[k] != shape[k] for k in ours):
            log.warning("resuming %s: its shape %s is kept, not %s", cfg.resume, {k: shape[k] for k in ours}, ours)
            cfg = replace(cfg, **{k: shape[k] for k in ours})
    vocab, performances = load_dataset(Path(cfg.data), Path(cfg.cache_dir), cfg.limit_files, given_vocab)
    train_set = [p for p in performances if p.split == "train"]  # the test split is never read here
    val_windows = evaluation_windows([p for p in performances if p.split == "validation"], vocab, cfg.block_size)
    if not val_windows:  # nothing would pick the checkpoint: "best 0.0000" and a frozen --out
        raise ValueError(f"{cfg.data} has no validation performances (info.csv's split column): "
                         "the validation split picks the checkpoint")
    if cfg.eval_windows:
        val_windows = random.Random(0).sample(val_windows, min(cfg.eval_windows, len(val_windows)))
    resumed_at = resumed["meta"]["step"] if resumed is not None else 0  # not the first run's first batches again
    if resumed_at >= cfg.steps:  # nothing would train, nor be saved: "best inf", exit 0
        raise ValueError(f"{cfg.resume} is at step {resumed_at}: --steps {cfg.steps} leaves nothing to train "
                         "(--steps counts from the start of the run it continues)")
    sampler = WindowSampler(train_set, vocab, cfg.block_size, seed=cfg.seed + rank + resumed_at,
                            genre_balance=cfg.genre_balance, rebar=cfg.rebar)
    priors = condition_priors(train_set, vocab)
    log.info("data: %d train performances, %d validation windows, vocabulary %d (%.1fs)",
             len(train_set), len(val_windows), len(vocab), time.time() - started)

    if teacher is None:
        model = DrumTransformer(ModelConfig(len(vocab), cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd,
                                            cfg.dropout)).to(device)
    else:  # the student starts as a copy of its teacher
        model = DrumTransformer(replace(teacher.model.config, dropout=cfg.dropout)).to(device)
        model.load_state_dict(teacher.model.state_dict())
    objective = "nll_token" if teacher is None else "kl_token"  # what validation picks the checkpoint by
    optimizer = make_optimizer(model, cfg, device)
    step, best, history, warm_from = 0, float("inf"), [], 0
    if resumed is not None:
        try:
            model.load_state_dict(resumed["model"])
        except RuntimeError as err:  # tensors that do not fit its own config
            raise checkpoint.damaged(Path(cfg.resume), "checkpoint", err) from None
        step, before = resumed["meta"]["step"], resumed["meta"]
        if (before.get("objective", "nll_token"), before.get("teacher")) == (objective, taught_by):
            best = before["best_val"] if "best_val" in before else before["best_val_nll_token"]  # older checkpoints
        if "optimizer" in resumed:
            optimizer.load_state_dict(resumed["optimizer"])
        else:
            warm_from = step
        history = resumed["meta"].get("history", [])
        log.info("resumed from %s at step %d", cfg.resume, step)
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ddp else model
    log.info("model: %.2fM parameters, %s", model.num_params() / 1e6, device)

    def run_meta(val_nll_token: float | None) -> dict:
        return {"step": step, "objective": objective, "best_val": best, "val_nll_token": val_nll_token,
                "history": history, "teacher": taught_by,
                "train_config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                "device": str(device), "torch": str(torch.__version__), "priors": priors}

    last = Path(cfg.out).with_suffix(".last.pt")
    bar = tqdm(total=cfg.steps, initial=step, disable=rank != 0, desc="train", unit="step")
    with stop_between_steps() as stop_asked:
        while step < cfg.steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg, warm_from)
            x, y = sampler.batch(cfg.batch_size)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device):
                logits = net(x)
                target = None if teacher is None else teacher.log_probs(x)
            loss = training_loss(logits, y, target)
            if not math.isfinite(loss.item()):  # it would train on NaN to the end and save nothing
                raise ValueError(f"the training loss is {loss.item()} at step {step + 1}: the run diverged "
                                 f"(a smaller --lr than {cfg.lr:g}?)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_at(step, cfg, warm_from):.1e}")
            if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
                metrics = evaluate(model, val_windows, vocab, cfg, device, teacher)
                metrics.update(step=step, train_loss=loss.item(), minutes=(time.time() - started) / 60)
                history.append(metrics)
                log.info("step %d: val NLL %.4f/token %.4f/note%s", step, metrics["nll_token"], metrics["nll_note"],
                         f", KL from the guided teacher {metrics['kl_token']:.4f}/token" if teacher else "")
                improved = metrics[objective] < best
                best = min(best, metrics[objective])
                if improved:
                    checkpoint.save(Path(cfg.out), model, vocab, run_meta(metrics["nll_token"]))
                checkpoint.save(last, model, vocab, run_meta(metrics["nll_token"]), optimizer)
            if stopping(stop_asked(), ddp, device):  # Ctrl-C: the steps since the last save are kept, for --resume
                if rank == 0:
                    if not history or history[-1]["step"] != step:
                        checkpoint.save(last, model, vocab, run_meta(history[-1]["nll_token"] if history else None),
                                        optimizer)
                    bar.close()
                    log.info("stopped at step %d; --resume %s goes on from there", step, last)
                raise KeyboardInterrupt
    bar.close()
    if ddp:
        dist.destroy_process_group()
    return {"objective": objective, "best_val": best, "history": history, "minutes": (time.time() - started) / 60}
