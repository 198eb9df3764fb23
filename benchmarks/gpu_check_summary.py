"""Gather the figures of one ``benchmarks/gpu_check.sh`` run into one JSON object (printed).

Usage: ``python benchmarks/gpu_check_summary.py LOGS_FOLDER``

Reads each step's output in LOGS_FOLDER (the last JSON line or object a step printed, the
pytest summary line of the tests) and derives the figures the GPU targets are stated in:
the paper-size search epoch time per setting (with and without validation, and whether
its steps were replayed from a graph), triton against eager at paper size, the
evaluation train step's images/s against the GRU network's, and the throughput of 4
search trials sharing the GPU against one, without and with MPS. A step that failed,
crashed or was skipped appears with its exit status and its error's last lines instead;
the script calls this after every step, so the file always holds what has run so far.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def read_json(folder: Path, name: str) -> dict | None:
    """The step's JSON output: the whole file, else its last line that parses (steps that print
    a partial result first, then the whole one)."""
    path = folder / f"{name}.out"
    try:
        text = path.read_text()
    except OSError:
        return None
    for candidate in [text, *reversed(text.strip().splitlines())]:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def step_status(folder: Path, name: str) -> dict:
    """What became of a step: its exit status, or skipped / not run yet, and its error's last lines."""
    rc = folder / f"{name}.rc"
    if rc.is_file():
        code = int(rc.read_text().strip() or -1)
        status = {0: "ok", 1: "failed", 124: "timed out", 137: "killed after its time limit"}.get(code, "crashed")
        return {"status": status, "rc": code, **({} if code == 0 else {"error": tail(folder, name)})}
    err = folder / f"{name}.err"
    if err.is_file() and "skipped" in err.read_text():
        return {"status": "skipped", "error": err.read_text().strip()}
    return {"status": "not run yet"}


def measured(folder: Path, name: str) -> dict:
    data = read_json(folder, name)
    status = step_status(folder, name)
    return {**data, "step": status["status"]} if data is not None else status


def tail(folder: Path, name: str, lines: int = 6) -> str:
    for suffix in (".err", ".out"):
        path = folder / f"{name}{suffix}"
        if path.is_file() and path.read_text().strip():
            return "\n".join(path.read_text().strip().splitlines()[-lines:])
    return "no output (skipped?)"


def tests(folder: Path) -> dict:
    text = (folder / "tests.out").read_text() if (folder / "tests.out").is_file() else ""
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    failures = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {**step_status(folder, "tests"), "summary": summary[-1] if summary else None, "failures": failures[:20]}


def crash_rerun(folder: Path) -> dict | None:
    """The CUDA_LAUNCH_BLOCKING=1 rerun after a crash: which step crashed and the kernel named in the error."""
    if not (folder / "crash_rerun.step").is_file():
        return None
    err = (folder / "crash_rerun.err").read_text() if (folder / "crash_rerun.err").is_file() else ""
    kernels = re.findall(r"(?:dartsrenet::|dartsrenet\.)(triton_\w+)|(_\w+_kernel)\b", err)
    names = [a or b for a, b in kernels]
    return {"crashed_step": (folder / "crash_rerun.step").read_text().strip(), **step_status(folder, "crash_rerun"),
            "kernel": names[-1] if names else None, "error": tail(folder, "crash_rerun", 15)}


EPOCH_STEPS = ("epoch_search_capture", "epoch_train_capture", "epoch_triton", "epoch_eager", "epoch_bf16", "profile")
TRAIN_STEPS = ("train_triton_capture", "train_triton", "train_eager")


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else "gpu_out/logs")
    environment = (folder / "environment.txt").read_text() if (folder / "environment.txt").is_file() else None
    result: dict = {"dry_run": bool(environment and "dry_run 1" in environment), "environment": environment,
                    "epochs": {name: measured(folder, name) for name in EPOCH_STEPS},
                    "equivalence": measured(folder, "equivalence"), "tests": tests(folder)}
    train = {}
    for name in TRAIN_STEPS:
        data = read_json(folder, name)
        if data is None:
            train[name] = step_status(folder, name)
            continue
        steps = data.get("train_step", {})
        gru = steps.get("gru", {}).get("images_per_s")
        train[name] = {
            cell: {"images_per_s": entry.get("images_per_s"), "ms": entry.get("ms"), "note": entry.get("note"),
                   "vs_gru_network": round(entry["images_per_s"] / gru, 3) if gru and entry.get("images_per_s") else None}
            for cell, entry in steps.items()
        }
    result["train_steps"] = train
    result["sharing"] = measured(folder, "sharing")
    result["crash_rerun"] = crash_rerun(folder)
    result["targets"] = targets(result)
    print(json.dumps(result, indent=1))
    return 0


def speedup(results: list[dict] | None) -> float | None:
    by_count = {entry["trials"]: entry for entry in results or []}
    one, four = (by_count.get(n, {}).get("aggregate_images_per_s") for n in (1, 4))
    return round(four / one, 2) if one and four else None


def targets(result: dict) -> dict:
    """The targets, each with the figure measured (None where its step did not run)."""
    search = result["epochs"]["epoch_search_capture"].get("search", {})
    train = result["train_steps"].get("train_triton_capture", {})
    ratio = (train.get("vanilla") or {}).get("vs_gru_network") if isinstance(train.get("vanilla"), dict) else None
    sharing = result["sharing"]
    return {
        "search_epoch_s (target <= 10, stretch <= 4)": search.get("epoch_s"),
        "search_epoch_with_validation_s": search.get("epoch_with_validation_s"),
        "search_steps_replayed": (search.get("capture") or {}).get("replayed_steps"),
        "capture_abandoned": (search.get("capture") or {}).get("abandoned"),
        "triton_vs_eager_ok": result["equivalence"].get("backend_vs_eager", {}).get("ok"),
        "graphed_vs_eager_ok": result["equivalence"].get("graphed_vs_eager", {}).get("ok"),
        "eval_train_step_vs_gru_network (target >= 0.5)": ratio,
        "four_trials_vs_one (target >= 3)": speedup(sharing.get("results")),
        "four_trials_vs_one_with_mps": speedup((sharing.get("mps") or {}).get("results")),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv))
