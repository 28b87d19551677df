"""`python -m harness export`: a finished run's images in GenEval's and WISE's own folder layouts."""
import json

import pytest

from generation_doubles import WorldRenderDouble, run_engine
from harness.cli import main
from harness.errors import HarnessError
from harness.export import export
from tasks.world import build
from tasks.geneval.task import GenEval
from tasks.wise.task import WISE
from understanding_doubles import shapes, world_cache  # noqa: F401


@pytest.fixture
def run_dir(shapes, tmp_path):
    model = WorldRenderDouble(geneval=build("geneval", n=6), wise=build("wise", n=6), fail={"00002/1"})
    res = run_engine(tmp_path, [GenEval(data=shapes, world_n=6, n_images=2), WISE(data=shapes, world_n=6)], model)
    return res.run_dir


def _artifact(run_dir, sha):
    return (run_dir.parent.parent / "artifacts" / sha[:2] / f"{sha}.png").read_bytes()


def test_geneval_layout(run_dir, tmp_path, capsys):
    out = tmp_path / "geneval_images"
    assert main(["export", str(run_dir), "--task", "geneval", "--out", str(out)]) == 0
    assert "exported 11 images of 6 documents" in capsys.readouterr().out
    rows = build("geneval", n=6)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}" for i in range(6)]
    for i, row in enumerate(rows):
        lines = (out / f"{i:05d}" / "metadata.jsonl").read_text().splitlines()
        assert [json.loads(x) for x in lines] == [row]
    assert sorted(p.name for p in (out / "00000" / "samples").iterdir()) == ["0000.png", "0001.png"]
    assert sorted(p.name for p in (out / "00002" / "samples").iterdir()) == ["0000.png"]     # sample 1 failed
    samples = [json.loads(x) for x in (run_dir / "geneval" / "samples.jsonl").read_text().splitlines()]
    sha = samples[3]["requests"]["generate"][1]["response"]["images"][0]
    assert (out / "00003" / "samples" / "0001.png").read_bytes() == _artifact(run_dir, sha)


def test_wise_layout_and_default_folder(run_dir):
    summary = export(run_dir, "wise")
    out = run_dir / "wise" / "export"
    ids = [r["prompt_id"] for r in build("wise", n=6)]
    assert summary["written"] == 6 and summary["out"] == str(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in ids)


def test_export_errors(run_dir, capsys):
    with pytest.raises(HarnessError, match="no finished 'unified_bench'"):
        export(run_dir, "unified_bench")
    with pytest.raises(HarnessError, match="has no image layout to export"):
        export(run_dir, "pope")
    assert main(["export", str(run_dir.parent), "--task", "geneval"]) != 0
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("prompt_id", "../../escaped"), ("prompt_id", "/tmp/absolute"),
                                          ("doc_id", "../outside")])
def test_names_from_a_tampered_samples_file_stay_inside_the_export_folder(run_dir, tmp_path, field, value):
    path = run_dir / "wise" / "samples.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    if field == "doc_id":
        lines[0]["record"].pop("prompt_id")
    lines[0]["record" if field == "prompt_id" else field] = (
        {**lines[0]["record"], "prompt_id": value} if field == "prompt_id" else value)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "deep" / "a" / "export"
    with pytest.raises(HarnessError, match="would be written outside"):
        export(run_dir, "wise", out)
    assert not (tmp_path / "deep" / "escaped.png").exists() and not (tmp_path / "deep" / "a" / "outside.png").exists()


@pytest.mark.parametrize("reference", ["../../private/secret", "/etc/hostname", "ab" * 31 + "/x"])
def test_an_image_reference_from_a_tampered_samples_file_never_names_a_file_outside_the_artifacts(
        run_dir, tmp_path, capsys, reference):
    """samples.jsonl names each stored image by its sha256; an edited name must not make export copy (or rescore
    send to a scorer) a file from elsewhere."""
    from PIL import Image as PILImage

    private = tmp_path / "private"
    private.mkdir()
    PILImage.new("RGB", (4, 4), (1, 2, 3)).save(private / "secret.png")
    path = run_dir / "wise" / "samples.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[0]["requests"]["generate"][0]["response"]["images"] = [reference]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--task", "wise", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a sha256 hex digest" in err and repr(reference) in err
    assert not any(p.read_bytes() == (private / "secret.png").read_bytes() for p in out.rglob("*.png"))
