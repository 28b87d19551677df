"""Tasks started by Slurm's `srun` join one run, as torchrun's processes do.

srun starts every task itself and gives each its task number, its number on the node, and the step's task count
and node list, but none of the variables torch.distributed reads (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT). Without them every task would run the whole command as rank 0 of 1: all of them evaluating every
document and writing the same cache shard and result files. So when no launcher has set RANK or WORLD_SIZE and the
srun step has more than one task, they are taken from Slurm's variables. A batch script's own process is no srun
task (it has no SLURM_STEP_NUM_TASKS, though it sees the job's SLURM_NTASKS), and torchrun started under srun sets
the variables itself, so neither is touched.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from harness.errors import HarnessError

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE")
# below Linux's default ephemeral range (32768-60999), so a derived port does not collide with outgoing connections
PORT_BASE, PORT_SPAN = 15000, 17000


def first_host(nodelist: str) -> str:
    """The first host of a Slurm hostlist, as `scontrol show hostnames | head -1` gives it: "gpu[007-009,012],cpu1"
    -> "gpu007" (zero padding kept: the range's first number is taken as written)."""
    host, i = [], 0
    while i < len(nodelist) and nodelist[i] != ",":
        if nodelist[i] == "[":
            end = nodelist.find("]", i)
            if end < 0:
                raise HarnessError(f"Slurm's node list {nodelist!r} has an unclosed '['; set MASTER_ADDR to the "
                                   "host of task 0")
            host.append(nodelist[i + 1:end].split(",")[0].split("-")[0])
            i = end + 1
        else:
            host.append(nodelist[i])
            i += 1
    if not host:
        raise HarnessError(f"Slurm's node list {nodelist!r} names no host; set MASTER_ADDR to the host of task 0")
    return "".join(host)


def _integer(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name)
    if value is None or not value.strip().isdigit():
        raise HarnessError(f"{name}={value!r}: srun sets it to a number for each task; run this command through "
                           "srun, or set RANK and WORLD_SIZE yourself")
    return int(value)


def launcher_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The torch.distributed variables an srun task lacks, or {} where there is nothing to add: a launcher already
    set them, or this is no srun step of more than one task. MASTER_ADDR and MASTER_PORT already set are kept."""
    if any(name in environ for name in LAUNCHER_VARIABLES) or "SLURM_STEP_NUM_TASKS" not in environ:
        return {}
    world = _integer(environ, "SLURM_STEP_NUM_TASKS")
    if world <= 1:
        return {}
    rank = _integer(environ, "SLURM_PROCID")
    if rank >= world:
        raise HarnessError(f"SLURM_PROCID={rank} is not below SLURM_STEP_NUM_TASKS={world}; set RANK and "
                           "WORLD_SIZE yourself")
    found = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(_integer(environ, "SLURM_LOCALID"))}
    if "MASTER_ADDR" not in environ:
        if environ.get("SLURM_DISTRIBUTION", "").startswith("arbitrary"):
            # a host file may put task 0 anywhere; only the first node is known to hold it in srun's own layouts
            raise HarnessError("srun --distribution=arbitrary: task 0's node is not known; set MASTER_ADDR to it")
        nodes = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
        if not nodes:
            raise HarnessError("srun gave no SLURM_STEP_NODELIST; set MASTER_ADDR to the host of task 0")
        found["MASTER_ADDR"] = first_host(nodes)
    if "MASTER_PORT" not in environ:
        # the same for every task of a step, and different for two steps of one job that share a node
        job, step = environ.get("SLURM_JOB_ID", "0"), environ.get("SLURM_STEP_ID", "0")
        seed = (int(job) if job.isdigit() else 0) * 31 + (int(step) if step.isdigit() else 0)
        found["MASTER_PORT"] = str(PORT_BASE + seed % PORT_SPAN)
    return found


def adopt(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set what `launcher_variables` finds in the environment (os.environ by default), before anything reads it:
    the harness's rank and world, accelerate's PartialState and torch.distributed's env:// rendezvous."""
    environ = os.environ if environ is None else environ
    found = launcher_variables(environ)
    environ.update(found)
    return found
