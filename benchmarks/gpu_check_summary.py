"""Gather the figures of one ``benchmarks/gpu_check.sh`` run into one JSON object (printed).

Usage: ``python benchmarks/gpu_check_summary.py LOGS_FOLDER``

Reads each step's output in LOGS_FOLDER (JSON where the step prints JSON, the pytest
summary line of the tests) and derives the figures the GPU targets are stated in: the
paper-size search epoch time per setting, the evaluation train step's images/s against
the GRU network's, and the throughput of 4 search trials sharing the GPU against one.
A step that failed or was skipped appears with its error's last lines instead.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def read_json(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.out"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(folder: Path, name: str, lines: int = 6) -> str:
    for suffix in (".err", ".out"):
        path = folder / f"{name}{suffix}"
        if path.is_file() and path.read_text().strip():
            return "\n".join(path.read_text().strip().splitlines()[-lines:])
    return "no output (skipped?)"


def tests(folder: Path) -> dict:
    text = (folder / "tests_cuda.out").read_text() if (folder / "tests_cuda.out").is_file() else ""
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    failures = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"summary": summary[-1] if summary else tail(folder, "tests_cuda"), "failures": failures[:20]}


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else "gpu_out/logs")
    result: dict = {"environment": (folder / "environment.txt").read_text() if (folder / "environment.txt").is_file() else None,
                    "tests": tests(folder)}
    epochs = {}
    for name in ("epoch_triton_capture", "epoch_triton", "epoch_eager"):
        data = read_json(folder, name)
        epochs[name] = data if data is not None else {"error": tail(folder, name)}
    result["epochs"] = epochs
    train = {}
    for name in ("train_triton_capture", "train_triton", "train_eager"):
        data = read_json(folder, name)
        if data is None:
            train[name] = {"error": tail(folder, name)}
            continue
        steps = data.get("train_step", {})
        gru = steps.get("gru", {}).get("images_per_s")
        train[name] = {
            cell: {"images_per_s": entry.get("images_per_s"), "ms": entry.get("ms"),
                   "vs_gru_network": round(entry["images_per_s"] / gru, 3) if gru and entry.get("images_per_s") else None}
            for cell, entry in steps.items()
        }
    result["train_steps"] = train
    sharing = read_json(folder, "sharing")
    result["sharing"] = sharing if sharing is not None else {"error": tail(folder, "sharing")}
    result["targets"] = targets(result)
    print(json.dumps(result, indent=1))
    return 0


def targets(result: dict) -> dict:
    """The issue's targets, each with the figure measured (None where its step did not run)."""
    search = result["epochs"].get("epoch_triton_capture", {}).get("search", {})
    train = result["train_steps"].get("train_triton_capture", {})
    ratio = (train.get("vanilla") or {}).get("vs_gru_network")
    by_count = {entry["trials"]: entry for entry in result["sharing"].get("results", [])} if "results" in result["sharing"] else {}
    one, four = (by_count.get(n, {}).get("aggregate_images_per_s") for n in (1, 4))
    speedup = round(four / one, 2) if one and four else None
    return {
        "search_epoch_s (target <= 10, stretch <= 4)": search.get("epoch_s"),
        "eval_train_step_vs_gru_network (target >= 0.5)": ratio,
        "four_trials_vs_one (target >= 3)": speedup,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv))
