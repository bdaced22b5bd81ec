"""`drumigen`: the command line. Every command has --help; exit codes are stable (see EXIT_*)."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1  # the request was refused or failed (bad input, unknown style, ...)
EXIT_USAGE = 2  # argparse's own code for bad flags
EXIT_UNAVAILABLE = 3  # no daemon answered at the endpoint

log = logging.getLogger("drumigen")


def cmd_train(args: argparse.Namespace) -> int:
    from daemon.train import TrainConfig, train

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    result = train(TrainConfig(**overrides))
    print(f"best validation NLL {result['best_val_nll_token']:.4f} nats/token after {result['minutes']:.1f} min")
    return EXIT_OK


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train the drummer on the Groove MIDI Dataset",
                       description="Train on GMD's train split, validate on its validation split.")
    p.add_argument("--data", type=Path, help="Groove MIDI Dataset folder (default ../shared/datasets/groove)")
    p.add_argument("--out", type=Path, help="checkpoint path (default runs/gmd/model.pt)")
    p.add_argument("--cache-dir", dest="cache_dir", type=Path, help="tokenized-data cache (default .cache)")
    p.add_argument("--limit-files", dest="limit_files", type=int, help="use only N files per split (smoke tests)")
    for name in ("n_layer", "n_head", "n_embd", "block_size", "steps", "batch_size", "warmup", "eval_every",
                 "eval_windows", "seed", "threads"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=int)
    for name in ("dropout", "lr", "min_lr", "weight_decay", "grad_clip"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=float)
    p.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--resume", type=Path, help="continue from a checkpoint written with optimizer state (*.last.pt)")
    p.set_defaults(func=cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drumigen", description="MidiDrumiGen: AI drum grooves for Ableton Live 12")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
