"""Speed of the recurrent cells: one sweep and one full train step, forward + backward.

Usage::

    python benchmarks/bench_cells.py [--device cpu|cuda] [--size paper|demo] [--quick] [--json]
                                     [--compile] [--bf16] [--only sweep|train] [--no-reference]
    python benchmarks/bench_cells.py --search-trial STEPS ...   # one search trial's images/s (GPU sharing)
    python benchmarks/bench_cells.py --count-kernels [--json]     # kernels per step, eager vs triton (CPU)

Everything runs in one process and the cases are timed round-robin (each round times
every case once; a case's figure is its fastest round), so ratios are comparable
even on a shared, noisy machine. Cells (CELL in the JSON):

* ``gru``, ``lstm`` — the baselines: ``nn.GRU``/``nn.LSTM`` (oneDNN on CPU, cuDNN on GPU);
* ``vanilla``, ``sigmoid_weighting``, ``directional_weight_sharing`` — the paper's
  derived cells, each with its own variant (docs/architecture.md §5);
* ``search`` — the search cell (random α); its entry is the vanilla variant and
  ``variants`` holds all three.

(a) ``sweep``: one bidirectional sweep of the first ReNet layer's horizontal 2×2
sweep, forward + backward (the input requires a gradient, as inside a network).
Paper size: 1,024 sequences of 16 steps, input 4N = 1,024, h = 128 per direction
(the search cell: N = 128, input 512, h = 64).
(b) ``train_step``: one optimiser step of the whole network on a batch of 64
(paper size) 32×32 images: forward, cross-entropy, backward, gradient clip, SGD
step. The evaluation network for the baselines and derived cells; for ``search``
one first-order DARTS step: an α step (Adam) on a val_cs batch, then a weight step
(SGD) on a train_cs batch, exactly as ``dartsrenet.search.search_epoch``.

Each entry: ``ms`` (fastest round), ``images_per_s``, ``gflops`` (achieved GFLOP/s),
``peak_mem_mb``, ``ratio_to_gru`` (achieved GFLOP/s ÷ ``nn.GRU``'s at the same
shapes: the GRU sweep at the same input/hidden sizes, the GRU evaluation network with
the same N) and ``ratio_to_reference`` (the straightforward implementation's time ÷
ours, i.e. the speed-up; the reference of the DARTS cells is the oracle
``dartsrenet/testing/reference_cells.py``, of GRU/LSTM the cells' step-by-step path
``fused=False``), plus ``reference_ms``.

FLOP formula (matmul/conv multiply-adds × 2, element-wise work not counted; training
= 3 × forward: the backward pass computes an input and a weight gradient of the same
size per forward product):

* per sequence step, both directions (input C, hidden h):
  GRU 2·2·(C·3h + h·3h); LSTM 2·2·(C·4h + h·4h);
  derived DARTS cell 2·2·((C+h)·2h + 8·h·2h) (+ 2·2·(C+h) for the sigmoid-weighting gate);
  search cell 2·2·((C+h)·2h + 36·h·2h) (+ the gate): the 36 edges j→i all project through W_i;
* a sweep: sequences × steps × the above;
* a network forward: stem convs 2·B·C_out·H_out·W_out·C_in·k² + every ReNet sweep
  (layer with an S×S input map: horizontal B·S/2 sequences × S/2 steps with input 4N,
  vertical the same count with input N) + the head 2·B·features·classes;
* a search step = α step + weight step = 2 × 3 × forward.

``images_per_s``: train step — the batch (training images) per second; sweep —
sequence steps per second ÷ 64 (a 32×32 image gives 8×8 = 64 patch steps to the
first ReNet layer's horizontal sweep). ``peak_mem_mb`` (of the warm-up call): CUDA —
peak allocated memory of the case; CPU — peak resident-set growth during the case,
sampled every 2 ms after ``malloc_trim`` (approximate: memory the allocator keeps
from earlier calls is not counted).

Why one script of ~620 lines: every case (cells × sweep/train step × ours/reference) and its
FLOP count, and the modes (``--search-trial``, ``--count-kernels``), share one plan and one
report; how a case is timed is in ``cell_timing.py`` beside it.
"""

from __future__ import annotations

import os

# OpenMP threads that spin while waiting steal the CPU from the thread they wait for when
# other processes share the cores: on the 2-core development machine that made small
# kernels 10–50× slower. Sleep instead (must be set before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dartsrenet import cells
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell, GRUCell, LSTMCell
from dartsrenet.genotypes import NUM_NODES, PAPER_GENOTYPES, num_edges
from dartsrenet.config import BASELINE_CELL_NAMES
from dartsrenet.cells.backends import BACKENDS, KERNEL_ACTIVATIONS, BackendError, resolve_backend
from dartsrenet.networks import build_eval_model, build_search_model
from dartsrenet.testing import reference_cells

from cell_timing import Case, synchronise, time_cases  # beside this script

BACKEND = {"name": "auto"}  # --backend: what every library cell and network is built with



VARIANT_NAMES = ("vanilla", "sigmoid_weighting", "directional_weight_sharing")
CELL_NAMES = ("gru", "lstm", *VARIANT_NAMES, "search")
PATCH_STEPS_PER_IMAGE = 64  # 32×32 image → 16×16 map → 8×8 patches in the first ReNet layer
SEARCH_EPOCH_STEPS = 390  # CIFAR-10 train_cs: 25,000 images / batch 64


@dataclass(frozen=True)
class Size:
    eval_channels: int  # N of the evaluation network
    search_channels: int  # N of the search network
    batch: int  # train-step batch
    image: int
    classes: int
    sweep_batch: int  # sequences of the sweep benchmark
    sweep_length: int  # steps of the sweep benchmark


SIZES = {
    "paper": Size(eval_channels=256, search_channels=128, batch=64, image=32, classes=10, sweep_batch=1024, sweep_length=16),
    "demo": Size(eval_channels=32, search_channels=16, batch=32, image=32, classes=10, sweep_batch=256, sweep_length=8),
}


# --- FLOP formulas ---------------------------------------------------------------------
def step_flops(cell: str, input_size: int, hidden: int) -> int:
    """Forward matmul FLOPs of one sequence step, both directions."""
    gate = (input_size + hidden) if cell in ("sigmoid_weighting", "search:sigmoid_weighting") else 0
    if cell in ("gru", "search:gru"):
        per_direction = input_size * 3 * hidden + hidden * 3 * hidden
    elif cell == "lstm":
        per_direction = input_size * 4 * hidden + hidden * 4 * hidden
    elif cell.startswith("search"):
        per_direction = (input_size + hidden) * 2 * hidden + num_edges(NUM_NODES) * hidden * 2 * hidden + gate
    else:
        per_direction = (input_size + hidden) * 2 * hidden + NUM_NODES * hidden * 2 * hidden + gate
    return 2 * 2 * per_direction


def network_forward_flops(cell: str, channels: int, batch: int, size: Size) -> int:
    """Forward FLOPs of a network (stem, three ReNet layers, head) on a batch of ``batch`` images."""
    hidden = channels // 2
    map_size = size.image // 2
    flops = 2 * batch * channels * map_size**2 * 3 * 7 * 7  # conv 3→N, 7×7, stride 2
    flops += 2 * (2 * batch * channels * map_size**2 * channels * 3 * 3)  # two 3×3 convs N→N
    for _ in range(3):
        sequences, steps = batch * map_size // 2, map_size // 2
        flops += sequences * steps * step_flops(cell, 4 * channels, hidden)  # horizontal, 2×2 patches
        flops += sequences * steps * step_flops(cell, channels, hidden)  # vertical, 1×1 patches
        map_size //= 2
    flops += 2 * batch * channels * map_size**2 * size.classes  # the head (its BatchNorm1d is element-wise)
    return flops


# --- the cases ---------------------------------------------------------------------------
def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def cuda_graphed(step: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """Capture a whole train step (forward, backward, optimiser) in a CUDA graph; return its replay.

    The recipe of the PyTorch CUDA-graph docs: warm up on a side stream, then capture.
    Inputs are the step's fixed tensors (a real loop would copy each batch into them).
    """
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def maybe_graphed(case: Case, plan: Plan, device: torch.device) -> Case:
    """With ``--cuda-graph``, our DARTS train steps replay a captured graph (eager if capture fails);
    the GRU/LSTM baselines stay eager, as the engine runs them (cuDNN's fused sweeps)."""
    if plan.cuda_graph and case.cell in BASELINE_CELL_NAMES:
        case.note = "eager: baselines are never captured"
    elif plan.cuda_graph and case.kind != "reference":
        try:
            case.run = cuda_graphed(case.run, device)
            case.note = "cuda graph"
        except Exception as error:  # noqa: BLE001 — report and measure eager mode instead
            case.note = f"cuda graph capture failed, eager: {type(error).__name__}: {error}"[:300]
            torch.cuda.synchronize(device)
    return case


def sweep_case(cell_name: str, kind: str, cell: nn.Module, input_size: int, hidden: int, sequences: int, size: Size,
               device, bf16: bool) -> Case:
    x = torch.randn(size.sweep_length, sequences, input_size, device=device, requires_grad=True)
    sweep = cell.sweep
    if isinstance(cell, reference_cells.ReferenceDartsCell):
        alpha = getattr(cell, "_benchmark_alpha", None)
        sweep = lambda inputs: cell.sweep(inputs, alpha)

    def run() -> None:
        with autocast(device, bf16 and kind != "reference"):
            out = sweep(x)
        out.backward(torch.ones_like(out))
        x.grad = None
        cell.zero_grad(set_to_none=True)

    flops = 3 * sequences * size.sweep_length * step_flops(cell_name, input_size, hidden)
    return Case("sweep", cell_name, kind, run, flops, sequences * size.sweep_length / PATCH_STEPS_PER_IMAGE, sequences)


def library_darts_cell(cell_name: str, input_size: int, hidden: int) -> nn.Module:
    if cell_name.startswith("search"):
        variant = cell_name.split(":")[1]
        architecture = ArchitectureWeights()
        with torch.no_grad():
            architecture.alpha.normal_()
        return DartsSearchCell(input_size, hidden, architecture, variant, backend=BACKEND["name"])
    return DartsCell(input_size, hidden, PAPER_GENOTYPES[cell_name], cell_name, backend=BACKEND["name"])


def oracle_of(cell: nn.Module) -> nn.Module:
    reference = reference_cells.reference_from_library(cell)
    if isinstance(cell, DartsSearchCell):
        reference._benchmark_alpha = cell.architecture.alpha
    return reference


def with_reference_pair(cases: list[Case], make: Callable[[str, int], Case], plan: Plan, name: str, batch: int) -> None:
    """Our case at ``batch``; if the plan wants a reference for ``name``, the reference and (at a
    smaller reference batch) our case again at the reference's shapes."""
    cases.append(make("ours", batch))
    if not plan.wants_reference(name):
        return
    reference_batch = max(1, batch // plan.reference_divisor)
    cases.append(make("reference", reference_batch))
    if reference_batch != batch:
        cases.append(make("ours@reference", reference_batch))


def sweep_cases(size: Size, device, plan: Plan) -> list[Case]:
    cases = []
    eval_in, eval_hidden = 4 * size.eval_channels, size.eval_channels // 2
    search_in, search_hidden = 4 * size.search_channels, size.search_channels // 2
    for name, cls in (("gru", GRUCell), ("lstm", LSTMCell)):
        if not plan.wants_cell(name):
            continue
        fused, unfused = cls(eval_in, eval_hidden).to(device), cls(eval_in, eval_hidden, fused=False).to(device)
        unfused.load_state_dict(fused.state_dict())
        make = lambda kind, batch, name=name, fused=fused, unfused=unfused: sweep_case(
            name, kind, unfused if kind == "reference" else fused, eval_in, eval_hidden, batch, size, device, plan.bf16)
        with_reference_pair(cases, make, plan, name, size.sweep_batch)
    for name in VARIANT_NAMES:
        if not plan.wants_cell(name):
            continue
        cell = library_darts_cell(name, eval_in, eval_hidden).to(device)
        reference = oracle_of(cell).to(device) if plan.wants_reference(name) else None
        make = lambda kind, batch, name=name, cell=cell, reference=reference: sweep_case(
            name, kind, reference if kind == "reference" else cell, eval_in, eval_hidden, batch, size, device, plan.bf16)
        with_reference_pair(cases, make, plan, name, size.sweep_batch)
    gru = GRUCell(search_in, search_hidden).to(device)
    cases.append(sweep_case("search:gru", "ours", gru, search_in, search_hidden, size.sweep_batch, size, device, plan.bf16))
    for variant in VARIANT_NAMES:
        name = f"search:{variant}"
        if not plan.wants_cell(name):
            continue
        cell = library_darts_cell(name, search_in, search_hidden).to(device)
        reference = oracle_of(cell).to(device) if plan.wants_reference(name) else None
        make = lambda kind, batch, name=name, cell=cell, reference=reference: sweep_case(
            name, kind, reference if kind == "reference" else cell, search_in, search_hidden, batch, size, device, plan.bf16)
        with_reference_pair(cases, make, plan, name, size.sweep_batch)
    return cases


def use_reference_cells(model: nn.Module) -> nn.Module:
    """Swap every ReNet sweep's cell for its straightforward reference (weights copied)."""
    for layer in model.backbone.layers:
        for direction in ("horizontal", "vertical"):
            cell = getattr(layer, direction)
            if isinstance(cell, (GRUCell, LSTMCell)):
                cell.fused = False
            else:
                architecture = cell.architecture if isinstance(cell, DartsSearchCell) else None
                setattr(layer, direction, reference_cells.ReferenceSweep(reference_cells.reference_from_library(cell), architecture))
    return model


def eval_train_case(cell_name: str, kind: str, batch: int, size: Size, device, plan: Plan, channels: int | None = None) -> Case:
    bf16 = plan.bf16
    channels = channels or size.eval_channels
    model = build_eval_model(
        cell_name, num_classes=size.classes, channels=channels, image_size=size.image, backend=BACKEND["name"]
    )
    if kind == "reference":
        model = use_reference_cells(model)
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.7, weight_decay=3e-4)
    images = torch.randn(batch, 3, size.image, size.image, device=device)
    labels = torch.randint(0, size.classes, (batch,), device=device)

    to_none = not plan.cuda_graph  # in a CUDA graph the gradients must keep their memory: zero them in place

    def run() -> None:
        optimizer.zero_grad(set_to_none=to_none)
        with autocast(device, bf16 and kind != "reference"):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    flops = 3 * network_forward_flops(cell_name, channels, batch, size)
    return maybe_graphed(Case("train_step", cell_name, kind, run, flops, batch, batch), plan, device)


def search_train_case(variant: str, kind: str, batch: int, size: Size, device, plan: Plan) -> Case:
    from dartsrenet.config import SearchConfig

    bf16 = plan.bf16
    from dartsrenet.search import make_optimizers

    model = build_search_model(
        variant, num_classes=size.classes, channels=size.search_channels, image_size=size.image, backend=BACKEND["name"]
    )
    if kind == "reference":
        model = use_reference_cells(model)
    model = model.to(device).train()
    weight_optimizer, arch_optimizer = make_optimizers(model, SearchConfig())
    if plan.cuda_graph and kind != "reference":
        for group in arch_optimizer.param_groups:
            group["capturable"] = True  # Adam's step count on the GPU, as CUDA graphs need
    weights = model.weight_parameters()
    shape = (batch, 3, size.image, size.image)
    images, val_images = torch.randn(shape, device=device), torch.randn(shape, device=device)
    labels = torch.randint(0, size.classes, (batch,), device=device)
    val_labels = torch.randint(0, size.classes, (batch,), device=device)

    to_none = not plan.cuda_graph  # in a CUDA graph the gradients must keep their memory: zero them in place

    def run() -> None:  # one step of dartsrenet.search.search_epoch
        with autocast(device, bf16 and kind != "reference"):
            arch_optimizer.zero_grad(set_to_none=to_none)
            F.cross_entropy(model(val_images), val_labels).backward()
            arch_optimizer.step()
            weight_optimizer.zero_grad(set_to_none=to_none)
            F.cross_entropy(model(images), labels).backward()
        nn.utils.clip_grad_norm_(weights, 1.0)
        weight_optimizer.step()

    flops = 2 * 3 * network_forward_flops(f"search:{variant}", size.search_channels, batch, size)
    return maybe_graphed(Case("train_step", f"search:{variant}", kind, run, flops, batch, batch), plan, device)


def train_cases(size: Size, device, plan: Plan) -> list[Case]:
    cases = []
    for name in ("gru", "lstm", *VARIANT_NAMES):
        if not plan.wants_cell(name):
            continue
        make = lambda kind, batch, name=name: eval_train_case(name, kind, batch, size, device, plan)
        with_reference_pair(cases, make, plan, name, size.batch)
    gru = eval_train_case("gru", "ours", size.batch, size, device, plan, channels=size.search_channels)
    gru.cell = "search:gru"
    cases.append(gru)
    for variant in VARIANT_NAMES:
        name = f"search:{variant}"
        if not plan.wants_cell(name):
            continue
        make = lambda kind, batch, variant=variant: search_train_case(variant, kind, batch, size, device, plan)
        with_reference_pair(cases, make, plan, name, size.batch)
    return cases


@dataclass(frozen=True)
class Plan:
    """What to measure: which references, at which fraction of the batch, with which options."""

    references: bool = True
    reference_divisor: int = 1  # references (and our case again) at batch / divisor
    search_reference_variants: tuple[str, ...] = VARIANT_NAMES
    bf16: bool = False
    cuda_graph: bool = False
    cells: tuple[str, ...] = CELL_NAMES  # gru is always measured: it is the comparison
    search_variants: tuple[str, ...] = VARIANT_NAMES

    def wants_cell(self, name: str) -> bool:
        if name.startswith("search:"):
            return "search" in self.cells and name.split(":")[1] in self.search_variants
        return name == "gru" or name in self.cells

    def wants_reference(self, name: str) -> bool:
        if not self.references:
            return False
        return not name.startswith("search:") or name.split(":")[1] in self.search_reference_variants


# --- report -----------------------------------------------------------------------------
def entries(cases: list[Case]) -> dict[str, dict]:
    """The JSON entries of one group: CELL → figures."""
    by_key = {(case.cell, case.kind): case for case in cases}

    def gflops(case: Case) -> float:
        return case.flops / case.best_s / 1e9

    def entry(cell: str, gru_cell: str) -> dict:
        ours, gru = by_key[(cell, "ours")], by_key[(gru_cell, "ours")]
        reference = by_key.get((cell, "reference"))
        ours_at_reference = by_key.get((cell, "ours@reference"), ours)
        return {
            "ms": round(ours.best_s * 1e3, 2),
            "images_per_s": round(ours.images / ours.best_s, 1),
            "gflops": round(gflops(ours), 2),
            "gflop": round(ours.flops / 1e9, 3),
            "peak_mem_mb": round(ours.peak_mb, 1) if ours.peak_mb is not None else None,
            "first_call_ms": round(ours.first_s * 1e3, 1),
            "ratio_to_gru": round(gflops(ours) / gflops(gru), 3),
            "ratio_to_reference": round(reference.best_s / ours_at_reference.best_s, 3) if reference else None,
            "reference_ms": round(reference.best_s * 1e3, 2) if reference else None,
            "reference_batch": reference.images_batch if reference else None,
            **({"note": ours.note} if ours.note else {}),
        }

    result = {}
    for cell in ("gru", "lstm", *VARIANT_NAMES):
        if (cell, "ours") in by_key:
            result[cell] = entry(cell, "gru")
    variants = {v: entry(f"search:{v}", "search:gru") for v in VARIANT_NAMES if (f"search:{v}", "ours") in by_key}
    if variants:
        result["search"] = {**variants.get("vanilla", next(iter(variants.values()))), "variants": variants}
    return result


def machine(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": platform.python_version(),
        # the DARTS cells' compute backend (--backend; auto: native on the CPU unless DARTSRENET_NATIVE=0)
        "backend": resolve_backend(BACKEND["name"], device, KERNEL_ACTIVATIONS),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model_names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        info["cpu_model"] = model_names[0] if model_names else None
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def print_table(result: dict) -> None:
    print(f"machine: {result['machine']}")
    print(f"options: {result['options']}")
    for group in ("sweep", "train_step"):
        if not result.get(group):
            continue
        print(f"\n{group}")
        print(f"{'cell':38s} {'ms':>9s} {'images/s':>10s} {'GFLOP/s':>8s} {'mem MB':>8s} {'×GRU':>6s} {'×ref':>6s} {'ref ms':>9s}")
        for cell, entry in result[group].items():
            rows = [(cell, entry)] if cell != "search" else [(f"search ({v})", e) for v, e in entry["variants"].items()]
            for label, e in rows:
                ref = f"{e['ratio_to_reference']:6.2f} {e['reference_ms']:9.1f}" if e["ratio_to_reference"] else f"{'—':>6s} {'—':>9s}"
                mem = f"{e['peak_mem_mb']:8.0f}" if e["peak_mem_mb"] is not None else f"{'—':>8s}"
                print(f"{label:38s} {e['ms']:9.1f} {e['images_per_s']:10.1f} {e['gflops']:8.1f} {mem} {e['ratio_to_gru']:6.2f} {ref}")
    if "search_epoch_estimate" in result:
        estimate = result["search_epoch_estimate"]
        print(f"\nsearch epoch estimate: {estimate['steps']} steps × {estimate['step_ms']:.1f} ms = {estimate['epoch_s']:.1f} s")


def search_trial(steps: int, size: Size, device, plan: Plan) -> dict:
    """Time ``steps`` search steps (after one warm-up step) of one trial: what GPU sharing measures."""
    case = search_train_case("vanilla", "ours", size.batch, size, device, plan)
    case.run()
    synchronise(device)
    waited = wait_for_the_other_trials()
    start_wall = time.time()
    start = time.perf_counter()
    for _ in range(steps):
        case.run()
    synchronise(device)
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": elapsed, "images_per_s": steps * size.batch / elapsed,
            "start": start_wall, "end": time.time(), "pid": os.getpid(), "note": case.note, "barrier_wait_s": waited}


BARRIER_TIMEOUT_S = 300


def wait_for_the_other_trials() -> float | None:
    """With ``DARTSRENET_BARRIER=FOLDER:COUNT`` (set by gpu_sharing.py): say this trial is warmed up
    (a file in FOLDER) and wait until COUNT trials are, so that the timed windows start together.
    Returns the seconds waited (None without a barrier)."""
    barrier = os.environ.get("DARTSRENET_BARRIER")
    if not barrier:
        return None
    folder, count = barrier.rsplit(":", 1)
    Path(folder, f"ready.{os.getpid()}").touch()
    started = time.perf_counter()
    while len(list(Path(folder).glob("ready.*"))) < int(count):
        if time.perf_counter() - started > BARRIER_TIMEOUT_S:
            raise RuntimeError(f"start barrier: only {len(list(Path(folder).glob('ready.*')))} of {count} trials ready")
        time.sleep(0.01)
    return round(time.perf_counter() - started, 3)


def print_kernel_counts(as_json: bool) -> int:
    """``--count-kernels``: the Triton backend under the interpreter (set before Triton is imported)."""
    os.environ["TRITON_INTERPRET"] = "1"
    import kernel_count

    started = time.perf_counter()
    result = kernel_count.kernels_per_step()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if as_json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"kernels per step ({result['shape']}; the same count as paper size)")
    for kind, counts in result["kernels_per_step"].items():
        details = result["details"][kind]
        print(f"  {kind:6s} " + "  ".join(
            f"{backend}: {count:,} kernels ({details[backend]['aten_ops']:,} aten ops, "
            f"{details[backend]['triton_launches']:,} Triton launches)" for backend, count in counts.items()
        ))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--quick", action="store_true",
                        help="1 round; references at 1/4 of the batch, the search cell's for vanilla only")
    parser.add_argument("--reference-divisor", type=int,
                        help="time the references (and our cells again) at batch / N (default 1, --quick 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="the DARTS cells' compute backend (default auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the eager backend's element-wise work (with --backend eager)")
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast for our cells and nn.GRU/nn.LSTM (not the references)"
    )
    parser.add_argument("--cuda-graph", action="store_true", help="replay our train steps from a captured CUDA graph (GPU only)")
    parser.add_argument("--cells", default=",".join(CELL_NAMES), help=f"comma-separated subset of {','.join(CELL_NAMES)}")
    parser.add_argument("--search-variants", default=",".join(VARIANT_NAMES), help="variants of the search cell to measure")
    parser.add_argument("--only", choices=["sweep", "train"], help="run one group only")
    parser.add_argument("--no-reference", action="store_true", help="skip the straightforward references")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 3, --quick 1)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--search-trial", type=int, metavar="STEPS", help="only time STEPS search steps; print JSON")
    parser.add_argument(
        "--count-kernels", action="store_true",
        help="count the kernels one search step and one train step launch, eager vs triton (CPU; see kernel_count.py)",
    )
    args = parser.parse_args(argv)
    if args.count_kernels:
        return print_kernel_counts(args.json)

    device = torch.device(args.device)
    if args.cuda_graph and device.type != "cuda":
        parser.error("--cuda-graph is a GPU option")
    if args.compile and args.backend != "eager":
        parser.error("--compile applies to the eager backend: add --backend eager")
    BACKEND["name"] = args.backend
    try:
        resolve_backend(args.backend, device, KERNEL_ACTIVATIONS)
    except BackendError as error:
        parser.error(str(error))
    if args.threads:
        torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    torch.manual_seed(0)
    cells.set_compile(args.compile)
    plan = Plan(
        references=not args.no_reference,
        reference_divisor=args.reference_divisor or (4 if args.quick else 1),
        search_reference_variants=("vanilla",) if args.quick else VARIANT_NAMES,
        bf16=args.bf16,
        cuda_graph=args.cuda_graph,
        cells=tuple(args.cells.split(",")),
        search_variants=tuple(args.search_variants.split(",")),
    )
    if args.search_trial:
        print(json.dumps(search_trial(args.search_trial, size, device, plan)))
        return 0

    def log(message: str) -> None:  # progress on stderr; the table or JSON on stdout
        print(message, file=sys.stderr, flush=True)

    rounds = args.rounds or (1 if args.quick else 3)
    started = time.perf_counter()
    result = {
        "machine": machine(device),
        "options": {"size": args.size, "quick": args.quick, "rounds": rounds, "compile": args.compile, "bf16": args.bf16,
                    "cuda_graph": args.cuda_graph,
                    "reference_divisor": plan.reference_divisor, "sizes": asdict(size)},
    }
    for group, build in (("sweep", sweep_cases), ("train", train_cases)):
        if args.only and args.only != group:
            continue
        log(f"{group}: building cases")
        cases = build(size, device, plan)
        time_cases(cases, rounds, device, log)
        result["sweep" if group == "sweep" else "train_step"] = entries(cases)
    if "train_step" in result and "search" in result["train_step"]:
        step_ms = result["train_step"]["search"]["ms"]
        result["search_epoch_estimate"] = {"steps": SEARCH_EPOCH_STEPS, "step_ms": step_ms,
                                           "epoch_s": round(SEARCH_EPOCH_STEPS * step_ms / 1e3, 2),
                                           "batch": size.batch, "variant": "vanilla"}
    result["options"]["compile_active"] = cells.compile_enabled()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
