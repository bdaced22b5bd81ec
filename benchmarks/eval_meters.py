"""Meters the data barely has: does the model play each meter's bar through, from a kick on the one
to its last count?

    .venv/bin/python benchmarks/eval_meters.py [--checkpoint PATH] [--seed N] [--meters 4/4,7/8,...]

GMD is 1,138 takes of 4/4 against 12 in any other meter, so a model can learn where a 4/4 bar
ends and nothing else (docs/model.md, meter replay). For every meter, 4 bars x 8 variations of
funk, rock, jazz, hip-hop and no style (160 bars) are generated at the defaults, and it prints:
- kick on the one: the share of funk, rock and hip-hop bars (96) with a kick (GM 35/36) within
  1/12 quarter of the downbeat, either side;
- last count: the share of all bars with a hit in their last count;
- hits per count: all hits, counted by the beat of the meter (its denominator's note) they start in.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon import checkpoint  # noqa: E402
from daemon.generate import Generator, GrooveRequest  # noqa: E402
from shared.notes import bar_beats  # noqa: E402
from daemon.kit import GROUPS  # noqa: E402

STYLES = ("funk", "rock", "jazz", "hiphop", None)
BACKBEAT = {"funk", "rock", "hiphop"}  # the styles whose bars should start with a kick
KICKS = set(GROUPS["kick"])
NEAR = 1 / 12  # quarter notes
BARS, VARIATIONS = 4, 8


def measure(generator: Generator, meter: tuple[int, int], seed: int) -> tuple[float, float, list[int]]:
    bar, count = bar_beats(meter), 4 / meter[1]  # in quarter notes
    per_count = Counter()
    kick_bars = last_bars = backbeat_bars = 0
    for style in STYLES:
        request = GrooveRequest(style=style, bars=BARS, meter=meter, variations=VARIATIONS, seed=seed)
        takes = generator.generate([request])[0]
        for take in takes:
            ones, lasts = set(), set()
            for note in take.notes:
                index, offset = divmod(note.start, bar)
                per_count[int(offset // count)] += 1
                if offset >= bar - count:
                    lasts.add(int(index))
                if note.pitch in KICKS and (offset <= NEAR or offset >= bar - NEAR):
                    ones.add(int(index) + (offset > NEAR))  # a kick just before the line is the next bar's one
            last_bars += len(lasts & set(range(BARS)))
            if style in BACKBEAT:
                backbeat_bars += BARS
                kick_bars += len(ones & set(range(BARS)))
    total = len(STYLES) * VARIATIONS * BARS
    return kick_bars / backbeat_bars, last_bars / total, [per_count[i] for i in range(meter[0])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.BUNDLED)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--meters", default="4/4,3/4,5/4,7/8,9/8,5/8,6/8,12/8,2/4")
    args = ap.parse_args()
    generator = Generator.load(args.checkpoint, device="cpu")
    print("| meter | kick on the one | bars with a hit in the last count | hits per count |")
    print("|---|---|---|---|")
    for text in args.meters.split(","):
        meter = tuple(int(x) for x in text.split("/"))
        ones, lasts, counts = measure(generator, meter, args.seed)
        print(f"| {text} | {ones:.0%} | {lasts:.0%} | {', '.join(map(str, counts))} |", flush=True)


if __name__ == "__main__":
    main()
