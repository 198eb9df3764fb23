"""How bench_cells.py measures a case: the timed callable and what its figures mean
(:class:`Case`), the peak memory of a call (:class:`PeakMemory`), and the warm-up then
round-robin timing that keeps ratios comparable on a shared machine (:func:`time_cases`).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or resident-set growth sampled every 2 ms on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    @staticmethod
    def _release_free_memory() -> None:
        """Hand memory freed by earlier cases back to the OS (glibc), so the growth is this case's."""
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif os.path.exists("/proc/self/statm"):
            self._release_free_memory()
            self._base, self._peak, self._running = self._rss_mb(), 0.0, True

            def sample():
                while self._running:
                    self._peak = max(self._peak, self._rss_mb())
                    time.sleep(0.002)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif hasattr(self, "_thread"):
            self._running = False
            self._thread.join()
            self.peak_mb = max(self._peak, self._rss_mb()) - self._base
        return False


@dataclass
class Case:
    """One timed callable and what its figures mean."""

    group: str  # sweep | train_step
    cell: str  # a CELL name, or search:VARIANT
    kind: str  # ours | reference | gru (the GRU comparison at this case's shapes)
    run: Callable[[], None]
    flops: int
    images: float
    images_batch: int = 0  # sequences (sweep) or images (train step) per call
    best_s: float = float("inf")
    first_s: float | None = None
    peak_mb: float | None = None
    note: str | None = None


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_cases(cases: list[Case], rounds: int, device: torch.device, log: Callable[[str], None]) -> None:
    """Warm every case up once (recording the first call's time and peak memory), then time round-robin."""
    for case in cases:
        synchronise(device)
        start = time.perf_counter()
        with PeakMemory(device) as memory:
            case.run()
            synchronise(device)
        case.first_s, case.peak_mb = time.perf_counter() - start, memory.peak_mb
        log(f"  warm-up {case.group:10s} {case.cell:34s} {case.kind:9s} {case.first_s * 1e3:9.1f} ms")
    for round_index in range(rounds):
        for case in cases:
            synchronise(device)
            start = time.perf_counter()
            case.run()
            synchronise(device)
            case.best_s = min(case.best_s, time.perf_counter() - start)
        log(f"  round {round_index + 1}/{rounds} done")
