"""Image paths written in a data file stay inside that file's folder: a data file handed to us cannot make the
harness read (and pass to a model, scorer or judge) an image from elsewhere on the machine."""
import json

import pytest
from PIL import Image as PILImage

from harness.data import load_rows
from harness.errors import DataError
from tasks.pope.task import POPE


@pytest.fixture
def layout(tmp_path):
    """data/rows.jsonl beside data/imgs/a.png; private/secret.png outside; data/linked -> a folder elsewhere."""
    data, private, shared = tmp_path / "data", tmp_path / "private", tmp_path / "shared"
    for folder in (data / "imgs", private, shared):
        folder.mkdir(parents=True)
    for png in (data / "imgs" / "a.png", private / "secret.png", shared / "b.png"):
        PILImage.new("RGB", (4, 4), (9, 9, 9)).save(png)
    (data / "linked").symlink_to(shared)
    return tmp_path


def _write(path, images):
    path.write_text("".join(json.dumps({"question_id": i, "question": "q?", "answer": "yes", "image": im}) + "\n"
                            for i, im in enumerate(images)))
    return path


def test_relative_paths_below_the_file_and_linked_folders_load(layout):
    rows = load_rows(_write(layout / "data" / "rows.jsonl", ["imgs/a.png", "linked/b.png", "imgs/../imgs/a.png"]),
                     image_columns=["image"])
    assert [r["image"].pil().size for r in rows] == [(4, 4)] * 3


@pytest.mark.parametrize("escape", ["../private/secret.png", "imgs/../../private/secret.png", "ABSOLUTE"])
def test_a_path_outside_the_data_files_folder_is_refused(layout, escape):
    escape = str(layout / "private" / "secret.png") if escape == "ABSOLUTE" else escape
    table = _write(layout / "data" / "rows.jsonl", ["imgs/a.png", escape])
    with pytest.raises(DataError, match=r"rows\.jsonl: row 2, column 'image': image path .* is outside the data "
                                        r"file's folder"):
        load_rows(table, image_columns=["image"])
    with pytest.raises(DataError, match="is outside the data file's folder"):      # POPE's lmms-lab schema
        POPE(data=str(table)).docs()
