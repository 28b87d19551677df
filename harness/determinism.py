"""The settings that decide whether the same request gives the same bits, set the same way in every evaluation
process and recorded in the manifest.

On a CPU, PyTorch splits a reduction (a matrix product, a softmax) across its threads, so the thread count moves
the last bits of a logit, and a sampled token, and from it a whole generated image, can change. torchrun gives each
process one thread (OMP_NUM_THREADS=1) while a lone process takes every core, so 1 and 2 processes drew different
images for the same cache key. Every evaluation process therefore runs with the same thread count, `threads`
(`--threads`, default 1) whatever OMP_NUM_THREADS says, and model adapters that run on the CPU put it in their
fingerprint, so cached answers of different thread counts never mix. cuDNN autotuning (which may pick a
different kernel per process) stays off. What remains different between machines (GPU kernels, batch
composition) is identical only up to floating-point reduction order; the README says which is which.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

DEFAULT_THREADS = 1
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def apply(threads: int = DEFAULT_THREADS) -> Callable[[], None]:
    """Set the evaluation's thread count (and cuDNN autotuning off); returns a function restoring the caller's.

    Before torch is imported the environment decides its thread pool, so the variables are set; once imported,
    torch is told directly. Importing torch here would cost every run of a torch-free model a second."""
    torch = sys.modules.get("torch")
    saved_env = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    for v in THREAD_VARIABLES:
        os.environ[v] = str(threads)
    if torch is None:
        return lambda: _restore_env(saved_env)
    previous, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = False

    def restore() -> None:
        _restore_env(saved_env)
        torch.set_num_threads(previous)
        torch.backends.cudnn.benchmark = benchmark
    return restore


def _restore_env(saved: dict) -> None:
    for v, value in saved.items():
        if value is None:
            os.environ.pop(v, None)
        else:
            os.environ[v] = value


def describe(threads: int) -> dict:
    """What the manifest records: the thread count asked for and, when torch ran, what it actually used."""
    out: dict = {"threads": threads, "request_seeds": "sha256(run seed, task, doc, stage, sample)"}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = {
            "num_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }
    out["hardware"] = hardware()
    return out


def usable_cpus() -> int:
    """The CPUs this process may run on: its share of a node (Slurm's --cpus-per-task, a container's cpuset), not
    the node's count, which on a shared GPU node can be many times more."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):        # no affinity outside Linux
        return max(1, os.cpu_count() or 1)


def hardware() -> dict:
    """What ran the kernels, since another GPU model or CUDA/cuDNN version moves the last bits: the CPU, and the
    GPUs when this process used CUDA (asking otherwise would start CUDA, and take GPU memory, in a CPU run)."""
    out: dict = {"cpu": _cpu_model(), "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        out["cuda"] = {"runtime": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                       "devices": [{"name": torch.cuda.get_device_name(i),
                                    "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
                                   for i in range(torch.cuda.device_count())]}
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or None
