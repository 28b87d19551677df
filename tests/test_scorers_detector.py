"""RLE mask helpers and the Mask2Former detector scorer on a tiny random-config Mask2Former (Swin backbone)
saved to a temporary folder. No network, no real weights."""
import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from harness.scorers.detector import DetectorScorer
from harness.masks import mask_to_box, rle_area, rle_decode, rle_encode
from harness.task import score

torch.set_num_threads(1)
NAMES = {0: "cat", 1: "dog", 2: "teddy bear"}


@pytest.mark.parametrize("mask", [
    np.zeros((3, 4), bool), np.ones((3, 4), bool), np.eye(4, 5, dtype=bool),
    np.array([[1, 0, 0], [1, 1, 0]], bool), np.random.default_rng(0).random((17, 23)) > 0.5,
])
def test_rle_round_trip(mask):
    rle = rle_encode(mask)
    assert rle["size"] == list(mask.shape) and sum(rle["counts"]) == mask.size
    json.dumps(rle)
    np.testing.assert_array_equal(rle_decode(rle), mask)
    assert rle_area(rle) == int(mask.sum())


def test_rle_is_coco_column_major_starting_with_zeros():
    mask = np.array([[0, 1], [0, 1], [1, 1]], bool)   # columns: [0,0,1] then [1,1,1]
    assert rle_encode(mask) == {"size": [3, 2], "counts": [2, 4]}
    assert rle_encode(np.ones((1, 2), bool))["counts"] == [0, 2]
    with pytest.raises(ValueError, match="sum"):
        rle_decode({"size": [2, 2], "counts": [1, 1]})


def test_mask_to_box_is_mmdet_mask2bbox():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_to_box(m) == [3.0, 2.0, 9.0, 5.0]     # x2/y2 one past the last set column/row
    assert mask_to_box(np.zeros((4, 4), bool)) == [0.0, 0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor,
                              SwinConfig)

    d = tmp_path_factory.mktemp("m2f")
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, num_labels=3, hidden_dim=32, feature_size=32,
                            mask_feature_size=32, num_queries=6, encoder_layers=1, decoder_layers=2,
                            num_attention_heads=2, dim_feedforward=32, encoder_feedforward_dim=32, common_stride=4,
                            id2label=NAMES, label2id={v: k for k, v in NAMES.items()}, use_pretrained_backbone=False)
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(cfg).eval()
    model.save_pretrained(d)
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32).save_pretrained(d)
    return d


def picture(seed, size):
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_detect_structure_masks_and_boxes(detector_dir):
    scorer = DetectorScorer(weights=str(detector_dir), device="cpu", batch_size=3)
    img = picture(0, (80, 48))                          # not square: resized to 64x128 (size_divisor 32)
    [resp] = scorer.run("detect", [score("detector", "detect", images=[img])])
    assert resp.ok, resp.error
    dets = resp.values["detections"]
    json.dumps(resp.values)
    assert dets and set(dets) <= set(NAMES.values())
    total = 0
    for name, items in dets.items():
        scores = [d["score"] for d in items]
        assert scores == sorted(scores, reverse=True)
        for d in items:
            assert NAMES[d["label"]] == name and 0.0 <= d["score"] <= 1.0
            mask = rle_decode(d["mask"])
            assert mask.shape == (48, 80) and mask.any()
            assert d["box"] == mask_to_box(mask)
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 48
            total += 1
    assert total <= 6                                   # at most one detection per query
    assert "mmdetection" in scorer.describe()["deviation"]


def test_detect_batching_matches_single_images_and_params(detector_dir):
    scorer = DetectorScorer(weights=str(detector_dir), device="cpu", batch_size=2)
    imgs = [picture(1, (64, 64)), picture(2, (80, 48)), picture(3, (64, 64)), picture(4, (64, 64))]
    reqs = [score("detector", "detect", images=[im]) for im in imgs]
    together = [r.values for r in scorer.run("detect", reqs)]
    singly = [scorer.run("detect", [r])[0].values for r in reqs]
    assert together == singly
    first = together[0]["detections"]
    cut = min(d["score"] for items in first.values() for d in items) + 1e-6
    [lean] = scorer.run("detect", [score("detector", "detect", images=[imgs[0]], min_score=cut, masks=False,
                                         class_names=["c0", "c1", "c2"])])
    got = lean.values["detections"]
    assert all(set(d) == {"box", "score", "label"} for items in got.values() for d in items)
    assert sum(map(len, got.values())) == sum(map(len, first.values())) - 1
    assert set(got) <= {"c0", "c1", "c2"}
    [bad] = scorer.run("detect", [score("detector", "detect", images=[imgs[0]], class_names=["only-one"])])
    assert not bad.ok and "no name" in bad.error
