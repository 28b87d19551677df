"""A runner is released once no later stage needs it: a model and several scorers never have to be loaded at the
same time, and the run says when it releases one."""
from harness.api import RunConfig, evaluate
from harness.metrics import mean
from harness.runner import Scorer, UnifiedModel
from harness.task import MODEL, DatasetInfo, Stage, Task, score, scorer_target, understand
from harness.types import Response


class LoadTrackingModel(UnifiedModel):
    """A test double that records when its weights would be loaded and released."""

    name = "tracking-model"

    def __init__(self, events):
        self.events, self.loaded = events, False

    def fingerprint(self):
        return "tracking-model"

    def understand(self, requests):
        if not self.loaded:
            self.loaded = True
            self.events.append("load model")
        return [Response(text=r.text.upper()) for r in requests]

    def unload(self):
        if self.loaded:
            self.events.append("unload model")
        self.loaded = False


class LoadTrackingScorer(Scorer):
    kinds = ("check",)

    def __init__(self, name, events):
        self.name, self.events, self.loaded = name, events, False

    def fingerprint(self):
        return self.name

    def check(self, requests):
        if not self.loaded:
            self.loaded = True
            self.events.append(f"load {self.name}")
        return [Response(values={"ok": True}) for _ in requests]

    def unload(self):
        if self.loaded:
            self.events.append(f"unload {self.name}")
        self.loaded = False


class ThreeStages(Task):
    """A test double task: the model answers, then two scorers look at the answer, one stage each."""

    name = "three_stages"
    declared = True

    def load(self):
        docs = [{"doc_id": str(i), "text": f"q{i}"} for i in range(3)]
        return docs, DatasetInfo("inline", "three")

    def stages(self):
        def uses(*targets):
            return targets if self.declared else None
        return [Stage("answer", lambda d, o: [understand(d["text"])], uses=uses(MODEL)),
                Stage("a", lambda d, o: [score("scorer_a", "check", text=o["answer"][0].text)],
                      uses=uses(scorer_target("scorer_a"))),
                Stage("b", lambda d, o: [score("scorer_b", "check", text=o["answer"][0].text)],
                      uses=uses(scorer_target("scorer_b")))]

    def process(self, doc, outputs):
        return {"ok": float(all(r.ok for rs in outputs.values() for r in rs))}

    def aggregate(self, records):
        return {"accuracy": mean([r["ok"] for r in records])}


class Undeclared(ThreeStages):
    name = "undeclared"
    declared = False


def _run(tmp_path, task, monkeypatch, capsys=None):
    import harness.scorers

    events = []
    monkeypatch.setattr(harness.scorers, "make_scorer", lambda name, args=None: LoadTrackingScorer(name, events))
    evaluate(LoadTrackingModel(events), [task], RunConfig(output=tmp_path, progress=capsys is not None,
                                                          use_cache=False))
    return events


def test_each_runner_is_released_before_the_next_loads(tmp_path, monkeypatch, capsys):
    events = _run(tmp_path, ThreeStages(), monkeypatch, capsys)
    assert events == ["load model", "unload model", "load scorer_a", "unload scorer_a", "load scorer_b",
                      "unload scorer_b"]
    err = capsys.readouterr().err
    assert "model released: no later stage of this run uses it" in err
    assert "scorer:scorer_a released" in err


def test_stages_that_do_not_declare_their_runners_keep_them(tmp_path, monkeypatch):
    events = _run(tmp_path, Undeclared(), monkeypatch)
    # nothing is known to be unneeded until the last round, whose own runner has no later stage at all
    assert events == ["load model", "load scorer_a", "load scorer_b", "unload scorer_b"]


def test_a_runner_a_later_task_still_needs_is_kept(tmp_path, monkeypatch):
    """Two tasks in one run: the model stays loaded while another task's later stage will ask it again."""
    class ModelLast(ThreeStages):
        name = "model_last"

        def stages(self):
            first, *_ = super().stages()
            return [Stage("a", lambda d, o: [score("scorer_a", "check", text=d["text"])],
                          uses=(scorer_target("scorer_a"),)),
                    Stage("answer2", first.build, uses=(MODEL,))]

        def process(self, doc, outputs):
            return {"ok": 1.0}

    events = []
    import harness.scorers

    monkeypatch.setattr(harness.scorers, "make_scorer", lambda name, args=None: LoadTrackingScorer(name, events))
    evaluate(LoadTrackingModel(events), [ThreeStages(), ModelLast()],
             RunConfig(output=tmp_path, progress=False, use_cache=False))
    assert events.index("unload model") > events.index("load scorer_a")     # round 1 still used the model
    assert events.count("load model") == 1



def test_unified_bench_needs_one_runner_at_a_time():
    """Caption and regenerate use the model; the four backbones come after it, each in its own group, so the
    executor releases the model before the first backbone loads and each backbone before the next."""
    from tasks.unified_bench.task import UnifiedBench

    assert [s.uses for s in UnifiedBench(data="unused").stages()] == [
        (MODEL,), (MODEL,), tuple(scorer_target(b) for b in ("clip", "siglip", "dinov2", "dreamsim"))]
