"""Build and load the fused C kernels of ``dartsrenet/csrc`` (node + BatchNorm, docs/architecture.md §2–§3).

The kernels (``csrc/node_kernels.c``) are plain C with OpenMP, called through
``ctypes`` on the memory of CPU tensors by :mod:`dartsrenet.kernels.native`. They are compiled on first use with the system's C compiler
(``$CC``, else ``cc``; about a second) for this machine's CPU, into a cache folder
(``$DARTSRENET_CACHE``, else ``~/.cache/dartsrenet``) under a key made of the sources,
the compiler, the flags and the CPU's features, so machines that share a home folder
never load a library built for another CPU. Processes building at the same time each
write their own file and rename it into place.

Where no compiler works, :func:`library` warns once and returns ``None``
(:func:`unavailable_reason` says why): the ``auto`` backend then computes the cells with
the ``eager`` backend (same results; ``tests/test_fused_nodes.py`` checks both), and the
``native`` backend, asked for by name, is refused. ``DARTSRENET_NATIVE=0`` turns the
kernels off the same way.

Compiler flags: ``-O3 -march=native -fno-math-errno -fno-trapping-math``, and no
``-ffast-math``: the kernels keep IEEE semantics for inf, NaN and denormals, so they match
PyTorch over the whole float range (``-ffinite-math-only`` let GCC assume no inf, and its
reciprocal estimate turned σ(x) for x ≲ −88 into NaN). ``exp``/``tanh`` are still
vectorised with glibc's vector math library (libmvec), whose vector versions
``csrc/node_kernels.c`` declares itself. Nothing switches the process's floating-point
unit to flush denormals to zero.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE_DIR = Path(__file__).parents[1] / "csrc"
SOURCES = ("node_kernels.c", "node_kernels_body.h")
MAIN_SOURCE = "node_kernels.c"
ENV_SWITCH = "DARTSRENET_NATIVE"
ENV_CACHE = "DARTSRENET_CACHE"

# tried in order; the first that compiles wins (no -march=native / OpenMP where unsupported)
# (never -ffast-math: see the module docstring)
IEEE_MATH = ("-fno-math-errno", "-fno-trapping-math")
COMPILE_FLAGS = (
    ("-O3", "-march=native", "-mprefer-vector-width=512", *IEEE_MATH, "-fopenmp", "-fPIC"),  # x86-64
    ("-O3", "-march=native", *IEEE_MATH, "-fopenmp", "-fPIC"),
    ("-O3", *IEEE_MATH, "-fopenmp", "-fPIC"),
    ("-O3", *IEEE_MATH, "-fPIC"),
)

_pointer, _int64, _int, _double = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
FORWARD_ARGTYPES = (
    [_pointer, _int64, _int64]  # projection, its direction and row strides
    + [_pointer, _int64, _int64]  # state, strides
    + [_int64, _int64, _int]  # rows, h, activation code
    + [_pointer, _pointer]  # γ, β (or NULL)
    + [_int, _pointer, _pointer, _double]  # batch statistics?, running mean, running variance, ε
    + [_pointer, _int64, _int64]  # out, strides
    + [_pointer] * 3  # mean, var, 1/σ
    + [_int]  # threads
)
BACKWARD_ARGTYPES = (
    [_pointer, _int64, _int64, _double]  # grad, strides, its factor
    + [_pointer, _int64, _int64]  # extra grad (added), strides
    + [_pointer, _int64, _int64]  # projection, strides
    + [_pointer, _int64, _int64]  # state, strides
    + [_int64, _int64, _int]  # rows, h, activation code
    + [_pointer, _pointer, _pointer, _int]  # γ (or NULL), mean, 1/σ, batch statistics?
    + [_pointer, _int64, _int64, _int]  # grad state, strides, accumulate?
    + [_pointer, _int64, _int64]  # grad projection, strides
    + [_pointer, _pointer, _int]  # grad γ, grad β, threads
)

MIXED_FORWARD_ARGTYPES = (
    [_pointer, _int64, _int64, _int64]  # projection, its direction, source and row strides
    + [_pointer, _int64, _int64, _int64]  # states, strides
    + [_int, _int64, _int64, _pointer]  # sources, rows, h, mixing weights
    + [_int, _pointer, _pointer, _double]  # batch statistics?, running mean, running variance, ε
    + [_pointer, _int64, _int64]  # out, strides
    + [_pointer] * 3  # mean, var, 1/σ
    + [_int]  # threads
)
MIXED_BACKWARD_ARGTYPES = (
    [_pointer, _int64, _int64]  # grad, strides
    + [_pointer, _int64, _int64]  # out, strides
    + [_pointer, _int64, _int64, _int64]  # projection, strides
    + [_pointer, _int64, _int64, _int64]  # states, strides
    + [_int, _int64, _int64, _pointer]  # sources, rows, h, mixing weights
    + [_pointer, _int, _pointer]  # 1/σ, batch statistics?, scratch
    + [_pointer, _int64, _int64, _int64]  # grad states (added to), strides
    + [_pointer, _int64, _int64, _int64]  # grad projection, strides
    + [_pointer, _int]  # grad mixing weights, threads
)

_STATE: dict = {"library": None, "failed": False, "reason": None}


def switched_off() -> bool:
    """``DARTSRENET_NATIVE=0``: never build or load the kernels."""
    return os.environ.get(ENV_SWITCH, "1") == "0"


def unavailable_reason() -> str:
    """Why :func:`library` returned ``None`` (or would)."""
    if switched_off():
        return f"switched off by {ENV_SWITCH}=0"
    return _STATE["reason"] or "not built yet"


def cache_dir() -> Path:
    """Where built libraries are kept."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "dartsrenet")


def _compiler() -> str | None:
    compiler = os.environ.get("CC") or "cc"
    return shutil.which(compiler)


def _cpu_features() -> str:
    """This CPU's feature flags (a library built with -march=native runs only where they match)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _build_key(compiler: str, flags: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((SOURCE_DIR / name).read_bytes())
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    for part in (version, " ".join(flags), platform.machine(), _cpu_features()):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _build(compiler: str) -> Path:
    """Compile and link the kernels (or find them in the cache); the library's path."""
    errors = []
    for flags in COMPILE_FLAGS:
        target = cache_dir() / _build_key(compiler, flags) / "node_kernels.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            objects, library = Path(scratch) / "node_kernels.o", Path(scratch) / "node_kernels.so"
            compile_step = [compiler, *flags, "-c", str(SOURCE_DIR / MAIN_SOURCE), "-o", str(objects)]
            link_flags = ["-fopenmp"] if "-fopenmp" in flags else []
            link_step = [compiler, "-shared", *link_flags, str(objects), "-o", str(library), "-lm"]
            for command in (compile_step, link_step):
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    errors.append(f"{' '.join(command)}: {result.stderr.strip()[-500:]}")
                    break
            else:
                os.replace(library, target)  # atomic: a concurrent build of the same key is identical
                return target
    raise RuntimeError("could not compile the fused kernels:\n" + "\n".join(errors))


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first call; ``None`` when switched off or unbuildable."""
    if switched_off() or _STATE["failed"]:
        return None
    if _STATE["library"] is None:
        try:
            compiler = _compiler()
            if compiler is None:
                raise RuntimeError(f"no C compiler found (looked for {os.environ.get('CC') or 'cc'!r}; set CC)")
            loaded = ctypes.CDLL(str(_build(compiler)))
            for suffix in ("_f32", "_f64"):
                forward, backward = getattr(loaded, "node_forward" + suffix), getattr(loaded, "node_backward" + suffix)
                forward.argtypes, forward.restype = FORWARD_ARGTYPES, _int
                backward.argtypes, backward.restype = BACKWARD_ARGTYPES, _int
                for name, argtypes in (("mixed_forward", MIXED_FORWARD_ARGTYPES), ("mixed_backward", MIXED_BACKWARD_ARGTYPES)):
                    function = getattr(loaded, name + suffix)
                    function.argtypes, function.restype = argtypes, _int
        except (OSError, RuntimeError) as error:
            _STATE["failed"] = True
            _STATE["reason"] = str(error).splitlines()[0]
            warnings.warn(
                f"dartsrenet: fused CPU kernels unavailable, using eager PyTorch (same results, slower): {error}",
                stacklevel=2,
            )
            return None
        _STATE["library"] = loaded
    return _STATE["library"]
