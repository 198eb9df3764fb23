"""The fused C kernels of another git revision against today's, in one process (CPU).

Usage::

    python benchmarks/kernel_builds.py [--revision REV] [--flags "-O3 -march=native ..."] [--rounds R]

Builds ``dartsrenet/csrc`` as of REV (default ``5ee4f74``: the kernels built with
``-ffast-math``, before they were made finite-safe) with FLAGS (default: that revision's
``-O3 -march=native -mprefer-vector-width=512 -ffast-math -fopenmp -fPIC``), loads it
beside today's build, and times a paper-size derived-cell sweep (vanilla, 1,024
sequences × 16 steps, input 1,024, h 128) and a search-cell sweep (input 512, h 64),
forward + backward, switching the library between the two builds round-robin. Prints
each build's fastest round and the ratio today ÷ REV (below 1: today is faster).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_cells.py

import torch

from dartsrenet.kernels import native_build as native
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell
from dartsrenet.genotypes import PAPER_GENOTYPES

ROOT = Path(__file__).resolve().parents[1]
OLD_FLAGS = "-O3 -march=native -mprefer-vector-width=512 -ffast-math -fopenmp -fPIC"
KERNELS = ("node_forward", "node_backward", "mixed_forward", "mixed_backward")


def build_revision(revision: str, flags: str, folder: Path) -> ctypes.CDLL:
    """The kernels of ``revision`` compiled with ``flags``, with today's argument types."""
    for name in native.SOURCES:
        source = subprocess.run(["git", "show", f"{revision}:dartsrenet/csrc/{name}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        (folder / name).write_text(source)
    compiler = os.environ.get("CC") or "cc"
    obj, lib = folder / "kernels.o", folder / "kernels.so"
    subprocess.run([compiler, *shlex.split(flags), "-c", str(folder / native.MAIN_SOURCE), "-o", str(obj)], check=True)
    subprocess.run([compiler, "-shared", "-fopenmp", str(obj), "-o", str(lib), "-lm"], check=True)
    old, today = ctypes.CDLL(str(lib)), native.library()
    for suffix in ("_f32", "_f64"):
        for name in KERNELS:
            mine, theirs = getattr(today, name + suffix), getattr(old, name + suffix)
            theirs.argtypes, theirs.restype = mine.argtypes, mine.restype
    return old


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", default="5ee4f74")
    parser.add_argument("--flags", default=OLD_FLAGS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    today = native.library()
    if today is None:
        parser.error(f"today's kernels are unavailable: {native.unavailable_reason()}")
    torch.manual_seed(0)
    cases = {
        "derived sweep": (DartsCell(1024, 128, PAPER_GENOTYPES["vanilla"], "vanilla", backend="native"),
                          torch.randn(16, 1024, 1024, requires_grad=True)),
        "search sweep": (DartsSearchCell(512, 64, ArchitectureWeights(), "vanilla", backend="native"),
                         torch.randn(16, 1024, 512, requires_grad=True)),
    }
    with tempfile.TemporaryDirectory() as folder:
        builds = {args.revision: build_revision(args.revision, args.flags, Path(folder)), "today": today}
        best = {}
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for build, library in builds.items():
                native._STATE["library"] = library
                for case, (cell, x) in cases.items():
                    start = time.perf_counter()
                    cell.sweep(x).sum().backward()
                    elapsed = time.perf_counter() - start
                    if round_index:
                        best[case, build] = min(best.get((case, build), float("inf")), elapsed)
        native._STATE["library"] = today
    for case in cases:
        old, new = best[case, args.revision], best[case, "today"]
        print(f"{case:14s} {args.revision}: {old * 1e3:7.0f} ms   today: {new * 1e3:7.0f} ms   today/{args.revision} {new / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
