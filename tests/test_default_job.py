"""The README's default job: `python -m harness run` with no arguments runs the bundled model on every task of the
embedded world (whole world sets), prints a results table and builds the leaderboards."""
import json
import re

import pytest

from conftest import run_cli
from harness.models.checkpoints import TINY_DIR

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (TINY_DIR / "model.safetensors").exists(),
                                 reason="the bundled tiny model has not been trained in this checkout")]
ALL = ["vqav2_val", "mmmu_val", "mmbench_en_dev", "pope", "geneval", "wise", "unified_bench", "naturalbench",
       "advqa_val"]


def test_default_job_runs_every_task_on_the_world_with_the_bundled_model(tmp_path):
    proc = run_cli("run", cwd=tmp_path)       # exactly the README's command, in a fresh folder
    assert proc.returncode == 0, proc.stderr[-3000:]
    for task in ALL:
        assert re.search(rf"^{task}\s+\w+ \*\s+[\d.]+\s", proc.stdout, re.M), (task, proc.stdout)
    [manifest] = (tmp_path / "results").glob("tiny-janus/*/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["status"] == "complete" and m["tasks"] == ALL and m["config"]["data"] == "shapes"
    assert m["config"]["limit"] is None
    for task in ALL:
        res = json.loads((manifest.parent / task / "results.json").read_text())
        assert res["dataset"]["source"] == "shapes" and res["counts"]["failed"] == 0
    assert (tmp_path / "results" / "leaderboards" / "index.html").exists()
    assert "understanding_world" in (tmp_path / "results" / "leaderboards" / "index.html").read_text()
    assert "leaderboards:" in proc.stdout
