"""Data-parallel evaluation: rank and world from the launcher, a barrier, and per-rank shard files.

Each process takes docs[rank::world] of every task and runs all of its stages; it writes its own cache shard and,
when a task finishes, its own shard of records and samples. After a barrier rank 0 merges the shards in global
document order and writes the task's files. Only small files cross process boundaries: nothing large goes through
collectives, and there is no padding (ranks may hold different numbers of documents).
Works with `torchrun` and `accelerate launch` (both set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), and with
`srun` starting one task per GPU (`harness.slurm` sets them from Slurm's variables).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from harness.errors import HarnessError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return Dist(rank, world, local)


def rank_gpu(local_rank: int) -> str | None:
    """The GPU of the process with this LOCAL_RANK, None without CUDA. A process that sees exactly one GPU uses it:
    a scheduler that binds one GPU to each task (srun --gpus-per-task=1) shows it as cuda:0 whatever the task's
    number on the node."""
    import torch

    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    if count == 1 or local_rank < count:
        return f"cuda:{0 if count == 1 else local_rank}"
    raise HarnessError(f"the process with LOCAL_RANK={local_rank} sees {count} GPUs: start at most one process "
                       "per GPU on a node, give each process one GPU, or name a device with --device")


def barrier(dist: Dist) -> None:
    """Wait for every rank. Stages can be unbalanced between ranks (a slow judge, a big image), hence the long timeout."""
    if dist.world <= 1:
        return
    import torch.distributed as td

    if not td.is_initialized():
        td.init_process_group(backend="gloo", rank=dist.rank, world_size=dist.world, timeout=timedelta(hours=12))
    td.barrier()


def shutdown() -> None:
    """Leave the process group at the end of a successful command. A process that exits with a gloo group still
    alive can abort during interpreter teardown (its threads still hold work: "terminate called without an active
    exception"), which turns a finished run into a failed exit under torchrun. Not called on errors or interrupts:
    destroying a group with a collective in flight waits for that collective."""
    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def shard_path(task_dir: Path, rank: int) -> Path:
    return task_dir / f".shard.rank{rank}.json"


def write_shard(task_dir: Path, rank: int, payload: dict) -> None:
    from harness.store import write_text

    write_text(shard_path(task_dir, rank), json.dumps(payload, default=str))


def read_shards(task_dir: Path, world: int) -> list[dict]:
    return [json.loads(shard_path(task_dir, r).read_text()) for r in range(world)]


def gather_on_main(directory: Path, dist: Dist, payload: dict) -> list[dict] | None:
    """Every rank's payload in rank order on rank 0, None on the others: each writes its shard file in `directory`,
    all meet at a barrier, rank 0 reads the files and removes them. One process: [payload], no file."""
    if dist.world <= 1:
        return [payload]
    write_shard(directory, dist.rank, payload)
    barrier(dist)
    if not dist.main:
        return None
    shards = read_shards(directory, dist.world)
    for r in range(dist.world):
        shard_path(directory, r).unlink(missing_ok=True)
    return shards


def merge_in_doc_order(per_rank: list[list], world: int) -> list:
    """Inverse of docs[rank::world]: global document i sits at position i // world of rank i % world."""
    total = sum(len(x) for x in per_rank)
    return [per_rank[i % world][i // world] for i in range(total)]


def combine_invocation(reports: list[dict]) -> dict:
    """One command's record from every rank's report ({"hardware", "batch_limits"}, in rank order): per runner, the
    smallest batch any rank kept to after running out of memory (the size that fits everywhere), and the ranks
    whose hardware is not rank 0's (a multi-node job on mixed GPU models) with that hardware."""
    limits: dict[str, int] = {}
    for report in reports:
        for group, size in (report.get("batch_limits") or {}).items():
            limits[group] = min(size, limits.get(group, size))
    others: list[dict] = []
    for rank, report in enumerate(reports[1:], 1):
        if report.get("hardware") == reports[0].get("hardware"):
            continue
        same = next((o for o in others if o["hardware"] == report.get("hardware")), None)
        if same is None:
            others.append({"ranks": [rank], "hardware": report.get("hardware")})
        else:
            same["ranks"].append(rank)
    return {**({"batch_limits": limits} if limits else {}), **({"other_hardware": others} if others else {})}
