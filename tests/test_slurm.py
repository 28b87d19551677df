"""Tasks started by `srun` join one run: rank, world and rendezvous from Slurm's variables, and only for srun tasks."""
import os
import subprocess
import sys

import pytest

from harness import distributed, slurm
from harness.errors import HarnessError
from conftest import ROOT
from srun_double import TORCH_VARIABLES

# what srun gives task 9 of a 2-node x 8-task step (job 4242, step 3)
SRUN_TASK = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "3", "SLURM_STEP_NUM_TASKS": "16", "SLURM_NTASKS": "16",
             "SLURM_PROCID": "9", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
             "SLURM_STEP_NODELIST": "gpu[007-008]", "SLURM_JOB_NODELIST": "gpu[007-008]"}


@pytest.mark.parametrize("nodelist,first", [
    ("gpu[007-009,012],cpu1", "gpu007"),        # zero padding kept as written
    ("node1", "node1"),
    ("alpha,beta", "alpha"),
    ("n[10]", "n10"),
    ("rack[2-3]-gpu[01-04]", "rack2-gpu01"),     # several bracket groups: the first of each
    ("a-b[5,1-3]", "a-b5"),                     # a hostlist keeps the order it was written in
])
def test_first_host_of_a_slurm_hostlist(nodelist, first):
    assert slurm.first_host(nodelist) == first


def test_an_unclosed_hostlist_is_refused_with_what_to_set():
    with pytest.raises(HarnessError, match=r"unclosed '\['; set MASTER_ADDR"):
        slurm.first_host("gpu[001-004")


def test_an_srun_task_gets_rank_world_local_rank_and_the_rendezvous_on_the_first_node():
    found = slurm.launcher_variables(SRUN_TASK)
    assert {k: found[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")} == {
        "RANK": "9", "WORLD_SIZE": "16", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu007"}
    port = int(found["MASTER_PORT"])
    assert slurm.PORT_BASE <= port < slurm.PORT_BASE + slurm.PORT_SPAN
    # every task of the step meets on the same port; another step of the job on the same node does not
    task0 = {**SRUN_TASK, "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    assert slurm.launcher_variables(task0)["MASTER_PORT"] == str(port)
    assert slurm.launcher_variables({**SRUN_TASK, "SLURM_STEP_ID": "4"})["MASTER_PORT"] != str(port)


def test_a_rendezvous_the_user_set_is_kept():
    found = slurm.launcher_variables({**SRUN_TASK, "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500"})
    assert "MASTER_ADDR" not in found and "MASTER_PORT" not in found and found["RANK"] == "9"


@pytest.mark.parametrize("environ", [
    {},                                                                             # no Slurm at all
    # a batch script's own process: the job's task count, but no srun step
    {k: v for k, v in SRUN_TASK.items() if not k.startswith("SLURM_STEP")},
    {**SRUN_TASK, "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"},                # srun with one task
    {**SRUN_TASK, "RANK": "3", "WORLD_SIZE": "32"},                                 # torchrun started by srun
], ids=["no-slurm", "batch-script", "one-task", "torchrun-under-srun"])
def test_nothing_is_added_where_srun_did_not_start_several_tasks(environ):
    assert slurm.launcher_variables(environ) == {}


@pytest.mark.parametrize("change,message", [
    ({"SLURM_PROCID": None}, r"SLURM_PROCID=None: srun sets it to a number"),
    ({"SLURM_PROCID": "16"}, r"SLURM_PROCID=16 is not below SLURM_STEP_NUM_TASKS=16"),
    ({"SLURM_STEP_NODELIST": None, "SLURM_JOB_NODELIST": None}, r"no SLURM_STEP_NODELIST; set MASTER_ADDR"),
    ({"SLURM_DISTRIBUTION": "arbitrary"}, r"arbitrary: task 0's node is not known; set MASTER_ADDR"),
])
def test_an_srun_environment_that_cannot_be_read_is_refused_with_what_to_set(change, message):
    environ = {k: v for k, v in {**SRUN_TASK, **change}.items() if v is not None}
    with pytest.raises(HarnessError, match=message):
        slurm.launcher_variables(environ)


def test_arbitrary_distribution_runs_once_the_rendezvous_is_named():
    found = slurm.launcher_variables({**SRUN_TASK, "SLURM_DISTRIBUTION": "arbitrary", "MASTER_ADDR": "gpu008"})
    assert found["RANK"] == "9" and "MASTER_ADDR" not in found


@pytest.mark.parametrize("count,local_rank,gpu", [(8, 3, "cuda:3"), (1, 5, "cuda:0"), (2, 0, "cuda:0")])
def test_each_process_takes_its_gpu_or_the_one_gpu_it_was_given(monkeypatch, count, local_rank, gpu):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert distributed.rank_gpu(local_rank) == gpu


def test_more_processes_than_gpus_on_a_node_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(HarnessError, match=r"LOCAL_RANK=5 sees 4 GPUs: start at most one process per GPU"):
        distributed.rank_gpu(5)


@pytest.mark.parametrize("command", [["harness", "run"], ["unigame", "train", "--data", "shapes", "--steps", "1"]],
                         ids=["harness", "unigame"])
def test_an_unreadable_srun_environment_stops_the_command_before_any_work(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in TORCH_VARIABLES}
    env.update({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                "SLURM_DISTRIBUTION": "arbitrary"})
    bad = subprocess.run([sys.executable, "-m", *command, "--output", str(tmp_path / "out")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: srun --distribution=arbitrary: task 0's node is not known; "
                                  "set MASTER_ADDR to it")
    assert not (tmp_path / "out").exists()
