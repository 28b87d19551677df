"""GenEval's object detector, rebuilt on transformers: Mask2Former Swin-S COCO instance segmentation.

GenEval runs mmdetection 2.x's mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco. mmcv-full/mmdet 2.x do not install
on current PyTorch, so this scorer uses the same architecture and training recipe's transformers port,
facebook/mask2former-swin-small-coco-instance, with its image processor and post_process_instance_segmentation.
This is a deviation, recorded in describe(): input resolution (the processor's shortest edge vs mmdet's test
pipeline), mask upsampling and score details differ, so verdicts can differ from the official detector's on
borderline objects. Boxes are taken from the masks as mmdet's Mask2Former does (mask2bbox, x2/y2 exclusive).

Images are batched only with images of the same size: the processor pads a batch to its largest image, and
post_process_instance_segmentation maps the whole padded canvas onto each image's size, which would shift the
masks of the smaller images (and padding also changes the backbone's features). Same-size images are resized
identically and never padded, so a batch gives exactly what one image at a time gives.

Kind `detect`: one image -> {"detections": {class_name: [{"box": [x1, y1, x2, y2], "score": float, "label": int,
"mask": {"size": [h, w], "counts": [...]}}, ...]}}, classes without detections omitted, most confident first.
Params (optional): "min_score" (keep score >= it; default the constructor's threshold, 0.0 = everything the
post-processor returns), "masks" (false drops the masks), "class_names" (names by label id, e.g. GenEval's
object_names.txt order; default the checkpoint's id2label).
"""
from __future__ import annotations

from types import SimpleNamespace

from harness.scorers.base import ModelScorer, one_image
from harness.masks import mask_to_box, rle_encode
from harness.types import Request, Response

DEVIATION = ("transformers Mask2Former (facebook/mask2former-swin-small-coco-instance) in place of GenEval's "
             "mmdetection 2.x mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco; preprocessing, mask upsampling and "
             "scores differ in detail")


class DetectorScorer(ModelScorer):
    name = "detector"
    kinds = ("detect",)
    default_weights = "facebook/mask2former-swin-small-coco-instance"
    preprocessing = ("checkpoint Mask2Former image processor; post_process_instance_segmentation; "
                     "boxes = mask2bbox of the binary masks")

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 4, threshold: float = 0.0,
                 class_names: list[str] | None = None, image_backend: str = "pil"):
        super().__init__(weights, revision, device, dtype, batch_size)
        self.threshold = float(threshold)
        self.class_names = list(class_names) if class_names else None
        self.image_backend = image_backend

    def settings(self) -> dict:
        return {**super().settings(), "threshold": self.threshold, "class_names": self.class_names,
                "image_backend": self.image_backend}

    def describe(self) -> dict:
        return {**super().describe(), "deviation": DEVIATION}

    def _load(self) -> None:
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        self._m_model = self.from_pretrained(Mask2FormerForUniversalSegmentation, dtype=self.dtype)
        self._m_model = self._m_model.to(self.device).eval()
        self._m_processor = self.from_pretrained(AutoImageProcessor, backend=self.image_backend)
        id2label = {int(k): v for k, v in self._m_model.config.id2label.items()}
        self._m_names = [id2label.get(i, str(i)) for i in range(max(id2label) + 1)] if id2label else []

    def detect(self, requests: list[Request]) -> list[Response]:
        self.ensure_loaded()
        out: list = [one_image(r) for r in requests]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            if out[i] is None:
                groups.setdefault(r.images[0].pil().size, []).append(i)
        for idxs in groups.values():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start:start + self.batch_size]
                for i, segments in zip(chunk, self._segments([requests[i].images[0].pil() for i in chunk])):
                    out[i] = self._response(requests[i], segments)
        return out

    def _segments(self, images: list) -> list[list[tuple]]:
        """Per image: [(label_id, score, binary mask ndarray), ...] in the post-processor's order."""
        import torch

        if len({im.size for im in images}) > 1:
            raise ValueError("detector batches must hold images of one size (see the module docstring)")
        inputs = self._m_processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        pixel_mask = inputs.get("pixel_mask")
        with torch.inference_mode():
            outputs = self._m_model(pixel_values=pixels,
                                    pixel_mask=pixel_mask.to(self.device) if pixel_mask is not None else None)
            classes = outputs.class_queries_logits.float()
            masks = outputs.masks_queries_logits.float()
            results = []
            for b, im in enumerate(images):  # one at a time: full-size masks of 100 queries are large
                one = SimpleNamespace(class_queries_logits=classes[b:b + 1], masks_queries_logits=masks[b:b + 1])
                res = self._m_processor.post_process_instance_segmentation(
                    one, threshold=self.threshold, target_sizes=[(im.height, im.width)], return_binary_maps=True)[0]
                maps = res["segmentation"]
                found = []
                for k, seg in enumerate(res["segments_info"]):
                    binary = (maps[k] if maps is not None and maps.dim() == 3 else maps == seg["id"])
                    found.append((int(seg["label_id"]), float(seg["score"]), binary.bool().cpu().numpy()))
                results.append(found)
        return results

    def _response(self, req: Request, segments: list[tuple]) -> Response:
        params = req.params or {}
        names = params.get("class_names") or self.class_names or self._m_names
        min_score = float(params.get("min_score", self.threshold))
        with_masks = bool(params.get("masks", True))
        detections: dict[str, list[dict]] = {}
        for label, score, mask in segments:
            if score < min_score:
                continue
            if not 0 <= label < len(names):
                return Response.failure(f"detector label {label} has no name ({len(names)} class names given)")
            det = {"box": mask_to_box(mask), "score": score, "label": label}
            if with_masks:
                det["mask"] = rle_encode(mask)
            detections.setdefault(str(names[label]), []).append(det)
        for dets in detections.values():
            dets.sort(key=lambda d: -d["score"])  # stable: ties keep the post-processor's order
        return Response(values={"detections": detections})
