"""`unigame train`: load, train, checkpoint, evaluate each finished checkpoint, regenerate the leaderboards.

    <output>/config.json                 the resolved configuration (rank 0)
    <output>/checkpoints/<run>-stepN/    see checkpoint.py
    <output>/dynamics/train_log.jsonl    one line per step; players.png, dominance.png, clean_vs_hard.png
    <results>/                           the harness's results store (default ./results, the one `python -m harness
                                         run` writes): base model + every evaluated checkpoint
    <results>/leaderboards/              regenerated after every evaluation
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from harness import termination
from harness.errors import HarnessError, WeightsError
from harness.leaderboard import default_out
from harness.runner import fingerprint_of
from harness.store import slug, write_json

from unigame import checkpoint, data as data_mod, dynamics
from unigame.dist import device_for, init
from unigame.evaluation import build_leaderboards, evaluate_model, summary
from unigame.filters import load_clip
from unigame.modeling import load_for_training, resolve
from unigame.trainer import Trainer, merge_metrics

log = logging.getLogger("unigame")


def _setup_logging(main: bool) -> None:
    logging.basicConfig(level=logging.INFO if main else logging.WARNING, format="%(message)s", force=True)


def _say(dist, text: str) -> None:
    if dist.main:
        print(text, flush=True)


def train(cfg) -> dict:
    """Run a training job; returns {"output", "checkpoints", "results", "leaderboards", "trainer"} (every rank)."""
    dist = init()
    _setup_logging(dist.main)
    device = device_for(dist, cfg.device)
    if cfg.eval_tasks:
        from harness.api import expand_tasks

        cfg.eval_tasks = expand_tasks(cfg.eval_tasks)      # an unknown task fails now, not after training
    adapter, init_meta = resolve(cfg, device)
    _default_data(cfg, adapter)
    clip = _clip_or_world_fallback(cfg, device, dist)
    label = cfg.label() if not init_meta else f"{init_meta['method']}+{cfg.label()}"
    run_name = run_slug(label, cfg.seed)
    base = init_meta["base_model"] if init_meta else cfg.model
    out = Path(cfg.output) if cfg.output else default_output(run_name, base, cfg.resume, dist)
    ckdir = out / "checkpoints"
    existing = checkpoint.latest(ckdir)
    if existing is not None:        # before any weights load
        checkpoint.check_base(existing, base, cfg.resume)
    if not cfg.resume and existing is not None:
        raise HarnessError(f"--output {out} already holds checkpoints; pass --resume to continue that run, or "
                           "choose another --output")
    size = getattr(adapter, "training_image_size", None)   # data before weights: bad data fails in seconds
    data = data_mod.load(cfg.data, cfg.captions, size, cfg.shapes_scenes) if size else None
    loaded = load_for_training(cfg, adapter, init_meta)
    if data is None:
        data = data_mod.load(cfg.data, cfg.captions, loaded.hooks.image_size, cfg.shapes_scenes)
    if cfg.fsdp and dist.world > 1:
        from unigame.fsdp import shard_layers

        n = shard_layers(loaded.model, loaded.lora_targets, torch.device(device).type, dist.world)
        _say(dist, f"FSDP: {n} decoder layers sharded over {dist.world} processes")
    trainer = Trainer(cfg, loaded, data, dist, clip)
    run_id = f"{run_name}-" + fingerprint_of(loaded.base_model, cfg.init_from, cfg.data, cfg.captions,
                                             {k: v for k, v in cfg.hyper_parameters().items() if k != "steps"})[:8]
    meta = _meta(cfg, trainer, label, run_id, dist)
    steplog = dynamics.StepLog(out / "dynamics" / "train_log.jsonl", dist.main)
    if cfg.resume:
        if existing is None:
            _say(dist, f"--resume: no complete checkpoint under {ckdir}; starting from step 0")
        else:                       # checked against this run's base model before the weights loaded
            checkpoint.restore(trainer, existing)
            steplog.truncate_after(trainer.step)
            _say(dist, f"resumed from {existing} (step {trainer.step})")
    if dist.main:
        write_json(out / "config.json", {**meta, "model": cfg.model,
                                         "eval": cfg.eval_tasks, "output": str(out)})
    info = trainer.data.info
    _say(dist, f"training {label} on {loaded.base_model} ({info['n_vqa']} VQA rows, {info['n_captions']} "
               f"captions), {dist.world} process(es), output {out}" + (f"; {trainer.note}" if trainer.note else ""))
    ev = Evaluator(cfg, dist, device, meta, Path(cfg.results),
                   Path(cfg.leaderboards) if cfg.leaderboards else default_out(cfg.results))
    if cfg.eval_tasks and cfg.eval_base:
        # train_run puts the base model at step 0 of this run's training curve
        ev.run(loaded.base_model, {"method": "base", "base_model": loaded.base_model, "step": 0,
                                   "seed": cfg.seed, "train_run": run_id}, "base model")
    if cfg.resume and existing is not None and cfg.eval_tasks and (trainer.step >= cfg.steps
                                                                   or eval_due(cfg, trainer.step)):
        # a finished run, or a checkpoint whose evaluation a stop may have cut short (SIGTERM, a kill): evaluate it;
        # what was already answered comes from the cache
        ev.checkpoint(existing, trainer.step)
    saved: list[Path] = []
    with termination.deferred():    # a SIGTERM lets the step under way finish, then saves it (below) and stops
        for step in range(trainer.step, cfg.stop_at or cfg.steps):
            mine = (trainer.train_step(step), termination.requested())
            gathered = dist.gather_objects(mine)
            record = merge_metrics([r for r, _ in gathered])
            stop = any(t for _, t in gathered)       # every rank stops after the same step
            done = trainer.step
            record = {"step": done, **record,
                      "samples_per_s": record.get("samples", 0) / max(record["seconds"], 1e-9),
                      "peak_mem_mb": dynamics.peak_memory_mb(trainer.device)}
            steplog.write(record)
            if done % max(1, cfg.steps // 20) == 0 or done == cfg.steps:
                _say(dist, _progress(record))
            final, evaluate_now = done == cfg.steps, eval_due(cfg, done)
            if stop or final or evaluate_now or done == cfg.stop_at or (cfg.save_every and done % cfg.save_every == 0):
                path = checkpoint.save(trainer, ckdir, run_name, meta)
                saved.append(path)
                if dist.main and cfg.plots:
                    dynamics.plot(steplog.path, out / "dynamics", label)
                    _write_buffer(trainer, out)
                if evaluate_now and not stop:
                    with termination.immediate():
                        ev.checkpoint(path, done)
                if dist.main:
                    checkpoint.prune(ckdir, cfg.keep_last, set(ev.evaluated[-1:]))
            if stop:
                _say(dist, f"SIGTERM: stopped after step {done}, saved as {saved[-1]}")
                raise termination.Terminated()
    dist.barrier()
    _say(dist, final_summary(label, trainer.step, checkpoint.latest(ckdir), ev, cfg))
    return {"output": out, "checkpoints": saved, "results": ev.results, "leaderboards": ev.boards,
            "trainer": trainer}


def eval_due(cfg, step: int) -> bool:
    """Whether the checkpoint of this step is evaluated: every --eval-every steps, and the last."""
    return bool(cfg.eval_tasks) and (step == cfg.steps or bool(cfg.eval_every and step % cfg.eval_every == 0))


def _default_data(cfg, adapter) -> None:
    """--data defaults to the model's own data source (shapes for the bundled tiny model); captions follow."""
    if cfg.data is None:
        cfg.data = getattr(adapter, "default_data", None)
        if cfg.data is None:
            raise HarnessError(f"--data is required for --model {cfg.model} (shapes, vqav2, hub:... or a path)")
    if cfg.captions is None:
        cfg.captions = "shapes" if cfg.data == "shapes" else "none"


def _clip_or_world_fallback(cfg, device, dist):
    """The filter's CLIP. On the embedded world with the default filter and no CLIP weights at hand (the offline
    default), train with --filter none instead: the exact scene check still keeps every label valid, and the
    run's label says filter=none, so it is never mistaken for a CLIP-filtered run."""
    try:
        return load_clip(cfg, device)
    except WeightsError as e:
        scene_check = cfg.scene_check in ("auto", "on") and cfg.decode
        if "filter" in cfg.explicit or cfg.data != "shapes" or not scene_check or cfg.hinge_weight > 0:
            raise
        _say(dist, f"note: {str(e).split(';')[0]}; training with --filter none, the world's exact scene check "
                   "guarding the labels (pass --clip-weights to filter with CLIP)")
        cfg.filter = "none"
        return None


class Evaluator:
    """Evaluates models into one results store and regenerates the leaderboards after each evaluation."""

    def __init__(self, cfg, dist, device, meta: dict, results: Path, boards_dir: Path):
        self.cfg, self.dist, self.device, self.meta = cfg, dist, device, meta
        self.results, self.boards_dir = results, boards_dir
        self.evaluated: list[Path] = []
        self.runs: dict[str, object] = {}       # what was evaluated ("base model", "step 200") -> RunResult
        self.boards = ""

    def run(self, spec: str, tags: dict, what: str) -> None:
        _say(self.dist, f"evaluating {what} on {', '.join(self.cfg.eval_tasks)} into {self.results}")
        res = evaluate_model(spec, self.cfg, self.dist, self.device, self.results, tags)
        self.runs[what] = res
        computed = sum(r.counts.computed or 0 for r in (res.results or {}).values())
        _say(self.dist, f"{what}: {summary(res)} ({computed} requests computed, the rest from the cache; "
                        f"{res.run_dir})")
        if self.dist.main:
            self.boards = build_leaderboards(self.results, self.boards_dir)
            _say(self.dist, self.boards)

    def checkpoint(self, path: Path, step: int) -> None:
        m = self.meta
        self.run(str(path), {"method": m["method"], "base_model": m["base_model"], "step": step,
                             "seed": self.cfg.seed, "train_run": m["train_run"],
                             "hyper_parameters": m["hyper_parameters"]}, f"step {step}")
        self.evaluated.append(path)


def final_summary(label: str, step: int, last: Path | None, ev: Evaluator, cfg) -> str:
    """Where everything went: the last checkpoint, its scores next to the base model's, and how to evaluate it."""
    from harness.report import comparison

    lines = [f"finished {label}, step {step}: last checkpoint {last if last else '(none written)'}"]
    scored = {what: r.results for what, r in ev.runs.items() if getattr(r, "results", None)}
    if scored:
        lines += ["", comparison(scored), "", "results: " + "; ".join(f"{what} {r.run_dir}"
                                                                    for what, r in ev.runs.items())]
    if ev.boards:
        lines.append(ev.boards)
    if last is not None:
        command = ["python", "-m", "harness", "run", "--model", str(last),
                   "--tasks", ",".join(cfg.eval_tasks) if cfg.eval_tasks else "all"]
        if cfg.eval_data:
            command += ["--data", cfg.eval_data]
        if cfg.eval_limit:
            command += ["--limit", str(cfg.eval_limit)]
        if str(cfg.results) != "results":
            command += ["--output", str(cfg.results)]
        lines.append("evaluate it: " + " ".join(command))
    return "\n".join(lines)


def default_output(run_name: str, base: str, resume: bool, dist) -> Path:
    """runs/<base model>/<run>: one folder per base model (a local folder by its name), so training a second model
    needs no --output. A --resume whose run sits in the default of earlier versions (runs/<run>, the same for
    every model) continues it there."""
    from harness.models import spec_slug

    out = Path("runs") / spec_slug(base) / run_name
    if not resume or checkpoint.latest(out / "checkpoints") is not None:
        return out
    legacy = checkpoint.latest(Path("runs") / run_name / "checkpoints")
    trained = checkpoint.base_of(legacy) if legacy is not None else None
    if trained is not None and checkpoint.same_model(trained, base):
        _say(dist, f"--resume: continuing the run in {legacy.parent.parent} (the default --output of earlier "
                   "versions)")
        return legacy.parent.parent
    return out


def run_slug(label: str, seed: int) -> str:
    """unigame(no-buffer,filter=cosine), seed 0 -> unigame_no-buffer_filter-cosine-s0 (folder-safe)."""
    text = label.replace("(", "_").replace(",", "_").replace("=", "-").replace(")", "")
    return slug(f"{text}-s{seed}")


def _meta(cfg, trainer, label: str, run_id: str, dist) -> dict:
    loaded = trainer.loaded
    init = loaded.init
    perturber = None
    if trainer.perturber is not None:
        p = trainer.perturber
        perturber = {"dim": p.dim, "hidden": p.hidden, "depth": p.depth, "parameters": p.parameter_count(),
                     "fraction_of_model": p.parameter_count() / loaded.base_params, "note": trainer.note}
    return {
        "adapter": loaded.adapter.name, "base_model": loaded.base_model, "method": label,
        "method_family": cfg.method, "hyper_parameters": cfg.hyper_parameters(), "seed": cfg.seed,
        "train_run": run_id, "world_size": dist.world, "data": trainer.data.info,
        "init_from": ({"path": init["path"], "method": init["method"], "step": init["meta"].get("step")}
                      if init else None),
        "semantic_filter": trainer.filter.describe() if trainer.filter else None,
        "perturber": perturber,
        "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                 "targets": len(loaded.lora_targets)},
        "training_only": ["training/"],
    }


def _progress(r: dict) -> str:
    keys = ("loss_u", "loss_clean", "loss_hard", "loss_c", "eps", "delta_rel", "asr", "buffer_size")
    parts = [f"{k} {r[k]:.4g}" for k in keys if isinstance(r.get(k), (int, float))]
    return f"step {r['step']}: " + ", ".join(parts) + f" ({r['samples_per_s']:.1f} samples/s)"


def _write_buffer(trainer, out: Path) -> None:
    if trainer.buffer is not None:
        (out / "dynamics").mkdir(parents=True, exist_ok=True)
        (out / "dynamics" / "buffer.json").write_text(json.dumps(
            {"step": trainer.step, "rank0": trainer.buffer.contents(), **trainer.buffer.stats()}, indent=1,
            default=str))
