"""Summarise a py-spy profile (`py-spy record --format raw`, collapsed stacks) as the functions
with the largest share of samples, inclusive and own. Usage:

    py-spy record --pid <bench pid> --duration 120 --format raw --output land.txt
    python -m bench.profile_summary land.txt > bench/results/profile_land_n1000.txt
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def summarise(collapsed: str, top: int = 30) -> str:
    inclusive, own = Counter(), Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    lines = [f"{total} samples", "", "inclusive  own  function (file:line)"]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{samples / total:8.1%} {own[frame] / total:5.1%}  {frame}")
    lines += ["", "own time, top functions:"]
    for frame, samples in own.most_common(top):
        lines.append(f"{samples / total:6.1%}  {frame}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]).read_text()), end="")
