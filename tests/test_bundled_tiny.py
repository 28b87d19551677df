"""The shipped tiny models (tiny-janus, tiny-emu3): load by name through their families' adapters (janus, emu3)
and score on held-out world data what their training.json records."""
import json

import pytest

torch = pytest.importorskip("torch")

from harness.models.checkpoints import TINY_DIR, TINY_EMU3_DIR  # noqa: E402

BUNDLED = [pytest.param(name, folder, marks=pytest.mark.skipif(
               not (folder / "model.safetensors").exists(), reason=f"{name} has not been trained in this checkout"),
               id=name)
           for name, folder in (("tiny-janus", TINY_DIR), ("tiny-emu3", TINY_EMU3_DIR))]


@pytest.mark.parametrize("name, folder", BUNDLED)
def test_shipped_folder_is_small_and_says_how_it_was_trained(name, folder):
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size <= 20 * 2 ** 20
    meta = json.loads((folder / "training.json").read_text())
    for key in ("seed", "world_version", "steps", "device", "wall_seconds", "recipe", "heldout"):
        assert key in meta
    assert not meta["quick"]


@pytest.mark.parametrize("name, folder", BUNDLED)
def test_bundled_model_answers_and_draws(name, folder):
    from harness.models import resolve_model
    from tasks.world import build
    from harness.types import Image, Request

    torch.set_num_threads(1)
    tiny = resolve_model(name, {"batch_size": 32})
    row = build("vqav2", n=1)[0]
    ans = tiny.understand([Request("model", "understand", images=(Image(pil=row["image"]),), params={},
                                   text=row["question"] + "\nAnswer the question using a single word or phrase.")])
    assert ans[0].ok and ans[0].text
    img = tiny.generate([Request("model", "generate", text="a photo of a red circle", seed=1, params={"size": 64})])
    assert img[0].ok and img[0].images[0].pil().size == (64, 64)
    # an empty caption is a prompt (UnifiedBench regenerates from whatever the model said); no text is an error
    empty, missing = tiny.generate([Request("model", "generate", text="", seed=1, params={"size": 64}),
                                    Request("model", "generate", text=None, seed=1, params={"size": 64})])
    assert empty.ok and empty.images[0].pil().size == (64, 64)
    assert not missing.ok and missing.error == "generate needs a text prompt"
    assert tiny.default_data == "shapes" and tiny.describe()["training"]["seed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name, folder", BUNDLED)
def test_heldout_scores_reproduce_the_record_and_hold_the_targets_it_clears(name, folder, tmp_path):
    """Our own tasks on the whole held-out world sets (300 VQA questions, 540 POPE questions, 240 GenEval images,
    100 UnifiedBench round trips), scored by the official rules: the shipped model scores what its training.json
    says, clears the targets it cleared when it shipped, and misses no new one (the README lists the misses)."""
    from tinyfactory.heldout import evaluate

    recorded = json.loads((folder / "training.json").read_text())["heldout"]
    got = evaluate(str(folder), tmp_path / "results")
    assert set(got["missed_targets"]) <= set(recorded["missed_targets"]), got["missed_targets"]
    assert got["vqav2"]["accuracy"] == pytest.approx(recorded["vqav2"]["accuracy"], abs=1.0)
    for split, p in recorded["pope"].items():
        if p["f1"] is None:       # never answered yes: F1 undefined
            assert got["pope"][split]["f1"] is None
        else:
            assert got["pope"][split]["f1"] == pytest.approx(p["f1"], abs=2.0)
    assert got["geneval"]["overall"] == pytest.approx(recorded["geneval"]["overall"], abs=0.02)
    ub = got["unified_bench"]
    assert ub["overall"] == pytest.approx(recorded["unified_bench"]["overall"], abs=0.5)


@pytest.mark.skipif(not (TINY_DIR / "model.safetensors").exists(), reason="tiny-janus is not trained here")
def test_yes_no_probe_reports_every_layer_and_the_embeddings_at_chance():
    """The probe's floor: the last prompt token is the same for every question, so at the embeddings it can
    only reach the base rate, 50.0% of POPE's balanced questions; every LM layer gets a line."""
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, str(ROOT / "bench" / "yes_no_probe.py"), "--train", "96", "--images", "4"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout.splitlines()
    layers = json.loads((TINY_DIR / "config.json").read_text())["text_config"]["num_hidden_layers"]
    assert out[0].startswith("tiny-janus: held-out POPE (embedded world, 72 questions), model AUC ")
    assert out[1].endswith("embeddings: 50.0% held-out") and len(out) == 2 + layers
