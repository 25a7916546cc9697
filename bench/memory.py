"""Peak memory of the bench's whole process tree while a stage runs.

On the Dagster path the work happens in processes the daemon starts (a run worker per run, dbt
under it), which `getrusage` counts only once they have ended and only one at a time. A thread
samples, every SAMPLE_SECONDS, the resident memory of every process descended from this one
(/proc), and keeps the largest sum seen and the largest single process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

SAMPLE_SECONDS = 0.2
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while listed
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _tree_rss_kib(root: int) -> tuple[int, int]:
    """(sum, largest) resident KiB of `root` and its descendants."""
    children = _children()
    total = largest = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


class TreePeak:
    """`with TreePeak() as peak: ...`, then `peak.record()`: the peak resident memory of this
    process and its descendants (sum, and the largest process) while the block ran."""

    def __init__(self) -> None:
        self.total_kib = self.largest_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        root = os.getpid()
        while True:
            total, largest = _tree_rss_kib(root)
            self.total_kib = max(self.total_kib, total)
            self.largest_kib = max(self.largest_kib, largest)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def record(self) -> dict:
        return {
            "peak_tree_rss_mib": self.total_kib // 1024,
            "peak_process_rss_mib": self.largest_kib // 1024,
        }


def disk_mib(*paths: Path) -> float:
    """Disk used by these files and folders (their blocks, not their sizes), MiB."""
    used = 0
    for path in paths:
        files = [path] if path.is_file() else path.rglob("*") if path.exists() else []
        for file in files:
            try:
                if file.is_file():
                    used += file.stat().st_blocks * 512
            except OSError:
                continue
    return round(used / 2**20, 1)
