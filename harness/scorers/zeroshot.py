"""Zero-shot classification and text embeddings shared by the CLIP backends, following clip_benchmark's
`zero_shot_classifier` / `run_classification`: each class's prompts are embedded and L2-normalised, averaged, and
the mean normalised again; logits = 100 * normalised image embedding @ class weights; the label is the argmax
(first class on ties, as torch.argmax).

Request params for `classify` (the task supplies the prompts; the scorer knows no benchmark):
  {"classnames": [...], "templates": ["a photo of a {c} car", ...]}  -> template.format(c=classname) per class
  {"prompts": {classname: [text, ...], ...}} (optionally with "classnames" fixing the order)
Response values: {"label": classname, "scores": {classname: logit}}.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext

from harness.scorers.base import one_image, vector_response
from harness.types import Request, Response

_MAX_CLASSIFIERS = 512


def class_prompts(params: dict) -> tuple[list[str], list[list[str]]]:
    """(classnames, prompts per class) from request params; ValueError says what is wrong."""
    prompts = params.get("prompts")
    names = params.get("classnames")
    if prompts is not None:
        if not isinstance(prompts, dict) or not prompts:
            raise ValueError("params 'prompts' must be a non-empty {classname: [text, ...]} mapping")
        names = list(names) if names is not None else list(prompts)
        if sorted(names) != sorted(prompts):
            raise ValueError("params 'classnames' and the keys of 'prompts' differ")
        texts = [list(prompts[n]) if isinstance(prompts[n], (list, tuple)) else [prompts[n]] for n in names]
    else:
        if not names:
            raise ValueError("classify needs params 'classnames' (+ 'templates') or 'prompts'")
        templates = params.get("templates") or ["{c}"]
        if isinstance(templates, str):
            templates = [templates]
        try:
            texts = [[t.format(c=n) for t in templates] for n in names]
        except (KeyError, IndexError) as e:
            raise ValueError(f"templates may only use the placeholder {{c}}, found {e}") from None
    if len(set(names)) != len(names):
        raise ValueError("duplicate class names")
    if any(not t or not all(isinstance(x, str) and x for x in t) for t in texts):
        raise ValueError("every class needs at least one non-empty prompt")
    return [str(n) for n in names], texts


class ZeroShotMixin:
    """Adds `embed_text` and `classify` to a scorer with image_features(pils) and text_features(texts)."""

    def _autocast(self):
        return nullcontext()

    def text_features(self, texts: list[str]):
        raise NotImplementedError

    def _text_rows(self, texts):
        import torch

        with torch.inference_mode(), self._autocast():
            return list(self.text_features(list(texts)).float().cpu().numpy())

    def embed_text(self, requests: list[Request]) -> list[Response]:
        self.ensure_loaded()
        out: list = [None if isinstance(r.text, str) and r.text else Response.failure("embed_text needs text")
                     for r in requests]
        todo = [i for i, r in enumerate(out) if r is None]
        for i, vec in zip(todo, self.batched([requests[i].text for i in todo], self._text_rows)):
            out[i] = vector_response(vec)
        return out

    def _classifier(self, prompts: list[list[str]]):
        """[d, n_classes] weights, memoised: a GenEval run asks for the same 10 colours thousands of times."""
        import torch
        import torch.nn.functional as F

        cache = self.__dict__.setdefault("_m_classifiers", OrderedDict())
        if cache is None:
            cache = self._m_classifiers = OrderedDict()
        key = tuple(tuple(p) for p in prompts)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        weights = []
        with torch.inference_mode(), self._autocast():
            for texts in prompts:
                emb = self.text_features(texts)
                mean = F.normalize(emb, dim=-1).mean(dim=0)
                weights.append(mean / mean.norm())
            clf = torch.stack(weights, dim=1)
        cache[key] = clf
        if len(cache) > _MAX_CLASSIFIERS:
            cache.popitem(last=False)
        return clf

    def classify(self, requests: list[Request]) -> list[Response]:
        import torch
        import torch.nn.functional as F

        self.ensure_loaded()
        out: list = [one_image(r) for r in requests]
        specs = {}
        for i, r in enumerate(requests):
            if out[i] is None:
                try:
                    specs[i] = class_prompts(r.params or {})
                except (ValueError, TypeError) as e:
                    out[i] = Response.failure(f"classify: {e}")
        todo = sorted(specs)

        def rows(pils):
            with torch.inference_mode(), self._autocast():
                return list(F.normalize(self.image_features(list(pils)), dim=-1))

        feats = self.batched([requests[i].images[0].pil() for i in todo], rows)
        for i, feat in zip(todo, feats):
            names, prompts = specs[i]
            with torch.inference_mode(), self._autocast():
                logits = (100.0 * feat.unsqueeze(0) @ self._classifier(prompts))[0].float().cpu()
            if not torch.isfinite(logits).all():
                out[i] = Response.failure("classify: non-finite scores")
                continue
            best = int(torch.argmax(logits))
            out[i] = Response(values={"label": names[best],
                                      "scores": {n: float(v) for n, v in zip(names, logits.tolist())}})
        return out
