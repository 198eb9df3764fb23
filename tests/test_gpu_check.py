"""benchmarks/gpu_check.sh end to end on the CPU (--dry-run), and how its summary reads crashes, skips and MPS."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def run_summary(logs: Path) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check_summary.py"), str(logs)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(result.stdout)


def test_the_dry_run_writes_the_gpu_checks_json_with_the_headline_first(tmp_path):
    """The headline step (the search epoch with capture) alone, ONLY=…: it runs, every other step
    is recorded as skipped, and the JSON has the GPU run's shape. (The whole dry run takes
    minutes on two busy cores: `bash benchmarks/gpu_check.sh --dry-run`.)"""
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT),
           "ONLY": "epoch_search_capture"}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "300"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert set(report) == {"dry_run", "environment", "epochs", "equivalence", "tests", "train_steps", "sharing",
                           "crash_rerun", "targets"}  # fmt: skip
    assert report["dry_run"] is True and report["crash_rerun"] is None
    search = report["epochs"]["epoch_search_capture"]["search"]
    assert search["epoch_s"] > 0 and search["epoch_with_validation_s"] > search["epoch_s"]
    assert search["capture"] == {"mode": True, "graphs": 0, "replayed_steps": 0, "eager_steps": search["capture"]["eager_steps"],
                                 "abandoned": None}  # fmt: skip
    assert report["targets"]["search_epoch_s (target <= 10, stretch <= 4)"] == search["epoch_s"]
    assert report["equivalence"]["status"] == "skipped" and report["sharing"]["status"] == "skipped"
    assert (tmp_path / "out" / "logs.tar.gz").is_file()


def test_a_crash_is_named_by_its_kernel_and_a_timeout_keeps_its_partial_figure(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "environment.txt").write_text("dry_run 0\n")
    (logs / "equivalence.out").write_text(json.dumps({"backend_vs_eager": {"ok": True}}) + "\n")
    (logs / "equivalence.rc").write_text("124\n")
    (logs / "epoch_search_capture.out").write_text("")
    (logs / "epoch_search_capture.err").write_text("RuntimeError: CUDA error: an illegal memory access was encountered\n")
    (logs / "epoch_search_capture.rc").write_text("1\n")
    (logs / "crash_rerun.step").write_text("epoch_search_capture\n")
    (logs / "crash_rerun.rc").write_text("1\n")
    (logs / "crash_rerun.err").write_text(
        '  File "torch/_ops.py", line 1, in __call__\n    torch.ops.dartsrenet.triton_mixed_backward(...)\n'
        "RuntimeError: CUDA error: an illegal memory access was encountered\n"
    )
    report = run_summary(logs)
    assert report["crash_rerun"]["kernel"] == "triton_mixed_backward"
    assert report["crash_rerun"]["crashed_step"] == "epoch_search_capture"
    assert report["epochs"]["epoch_search_capture"]["status"] == "failed"
    assert report["equivalence"]["backend_vs_eager"]["ok"] is True and report["equivalence"]["step"] == "timed out"
    assert report["epochs"]["epoch_eager"] == {"status": "not run yet"}


def test_sharing_says_why_mps_is_not_used():
    spec = importlib.util.spec_from_file_location("gpu_sharing", ROOT / "benchmarks" / "gpu_sharing.py")
    gpu_sharing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_sharing)
    assert gpu_sharing.mps_unavailable_reason("cpu") == "device cpu is not a CUDA device"
    if not shutil.which(gpu_sharing.MPS_CONTROL):
        assert "is not installed" in gpu_sharing.mps_unavailable_reason("cuda")
