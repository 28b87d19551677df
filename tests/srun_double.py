"""A stand-in for Slurm's `srun` on one node (no Slurm here): it starts N copies of a command at once, each with
the per-task variables srun gives (SLURM_STEP_NUM_TASKS, SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID, the step's
node list, job and step ids) and none of torch.distributed's, as srun does.

The job and step ids are chosen so that the rendezvous port the harness derives from them is one free here.
"""
from __future__ import annotations

import os
import socket
import subprocess

from harness.slurm import PORT_BASE, PORT_SPAN

TORCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _free_derived_port() -> int:
    """A free port in the range the harness derives ports from (below the ephemeral range, so port 0 never lands
    in it: probe it instead)."""
    with socket.socket() as s:
        for port in range(PORT_BASE + 1000, PORT_BASE + PORT_SPAN):
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in the derived range")


def task_environment(base: dict, ntasks: int, task: int, step_id: int) -> dict:
    env = {k: v for k, v in base.items() if k not in TORCH_VARIABLES and not k.startswith("SLURM_")}
    env.update({"SLURM_JOB_ID": str(PORT_SPAN), "SLURM_STEP_ID": str(step_id), "SLURM_STEP_NUM_TASKS": str(ntasks),
                "SLURM_NTASKS": str(ntasks), "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task),
                "SLURM_NODEID": "0", "SLURM_STEP_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost"})
    return env


def srun(argv: list[str], ntasks: int, *, cwd, env: dict | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    """Every task's exit code (the highest returned), stdout and stderr joined in task order."""
    # SLURM_JOB_ID = PORT_SPAN contributes nothing to the derived port, so the step id alone picks it
    step_id = _free_derived_port() - PORT_BASE
    procs = [subprocess.Popen(argv, cwd=cwd, env=task_environment(dict(env or os.environ), ntasks, task, step_id),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for task in range(ntasks)]
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    codes = [p.returncode for p in procs]
    return subprocess.CompletedProcess(argv, max(codes, key=abs), "".join(o for o, _ in outs),
                                       "".join(e for _, e in outs))
