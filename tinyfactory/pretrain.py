"""Pretrain a bundled tiny model on the embedded world, reproducibly, on two CPU cores.

    python -m tinyfactory.pretrain                # tiny-janus, the shipped model (about 110 minutes on 2 cores)
    python -m tinyfactory.pretrain --arch emu3    # tiny-emu3, the second bundled architecture
    python -m tinyfactory.pretrain --quick        # the same pipeline in well under a minute (tests)

Parts, one process per core, each with one thread (janus.md: two 2-thread jobs on 2 cores slow each other down):
  phase 1, in parallel: the VQ autoencoder | (Janus only) the understanding encoder on a per-patch auxiliary task;
  phase 2, two data-parallel ranks: understanding (encoder + LM; Emu3 reads images as VQ codes through the LM);
  phase 3, two data-parallel ranks: understanding and caption -> VQ-code generation together (one model);
  phase 4, two data-parallel ranks: the same two losses, with the set-level yes/no, relation and position
  questions sampled more often (`focus_families` multiplies their weights).
The architecture-specific pieces are `tinyfactory.lm.JanusArch` and `tinyfactory.emu3_parts.Emu3Arch`.
Then the model is written as a Hugging Face folder (default: the package's `harness/models/tiny_janus/` or
`tiny_emu3/`, which the `tiny-janus` / `tiny-emu3` names load through the ordinary `janus` / `emu3` adapters) with
`training.json` saying how it was trained, and checked on held-out world data (`tinyfactory.heldout`).

Seeded and step-based, so the same command gives the same weights on the same software stack. Interrupted runs
resume: finished parts are kept, unfinished ones restart from their last checkpoint in --workdir.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

MODEL = dict(hidden=128, layers=4, heads=4, kv_heads=4, intermediate=512, vision_hidden=128, vision_layers=3,
             vision_heads=4, image_size=64, patch=8, vq_embed=8, codes=512, vq_base=32, vq_latent=64,
             vq_res_blocks=1, max_positions=1024)
RECIPE = dict(
    seed=0, model=MODEL, vocab_texts=2000,
    vq_steps=1500, vq_batch=16, vq_lr=2e-3, vq_restart_every=100,
    vision_steps=8000, vision_batch=32, vision_lr=1e-3,
    und_steps=1500, und_batch=12, und_lr=2e-3, segments=8, caption_p=0.3, aux_weight=0.5, aux_tied=True,
    encoder_lr_scale=0.25,
    joint_steps=2800, joint_und_batch=4, joint_gen_batch=32, joint_lr=1.5e-3, gen_weight=1.0, cfg_drop=0.1,
    focus_steps=600, focus_batch=8, focus_gen_batch=32, focus_lr=5e-4,
    focus_families={"pope": 8.0, "any": 4.0, "exist": 2.0, "rel_yn": 3.0, "lr": 2.0, "ab": 2.0, "size": 2.0,
                    "where_rel": 3.0, "where": 3.0},
    warmup=100, log_every=20, save_every_s=240, guidance=2.0, image_temperature=1.0,
)
# Emu3: no encoder part (vision_* and encoder_lr_scale unused); its VQ runs alone in phase 1, on both cores
EMU3 = dict(arch="emu3",
            model=dict(hidden=128, layers=4, heads=4, kv_heads=4, intermediate=512, codes=512, embed_dim=8,
                       vq_base=32, vq_latent=8, vq_res_blocks=1, max_positions=1024),
            vq_threads=2, vq_steps=1200, und_steps=1500, joint_steps=2200, focus_steps=500, set_aux={"focus": 1.0})
#: per architecture: the recipe keys it has no part for, and its values that differ from RECIPE
ARCH_RECIPES = {"janus": ((), {}), "emu3": (("vision_steps", "vision_batch", "vision_lr", "encoder_lr_scale"), EMU3)}
QUICK = dict(vocab_texts=100, vq_steps=12, vq_batch=4, vq_restart_every=6, vision_steps=12, vision_batch=4,
             und_steps=8, und_batch=2, segments=4, joint_steps=8, joint_und_batch=2, joint_gen_batch=4,
             focus_steps=6, focus_batch=2, focus_gen_batch=4, warmup=2, log_every=1, save_every_s=5)


def recipe_for(quick: bool, seed: int, overrides: dict, arch: str = "janus") -> dict:
    r = json.loads(json.dumps(RECIPE))
    unused, changes = ARCH_RECIPES[arch]
    for k in unused:
        del r[k]
    r.update(json.loads(json.dumps(changes)))
    if quick:
        r.update({k: v for k, v in QUICK.items() if k in r})
    r["seed"] = seed
    for k, v in overrides.items():
        if k not in r:
            raise SystemExit(f"--set {k}: not a recipe key ({', '.join(sorted(r))})")
        r[k] = v
    from tinyfactory.data import family_probabilities

    try:
        family_probabilities(r["focus_families"])
    except (ValueError, TypeError, AttributeError) as e:
        raise SystemExit(f"--set focus_families: {e}") from None
    return r


def _hash(r: dict) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:12]


def prepare(workdir: Path, r: dict) -> None:
    """Tokenizer, processor and config (no weights) in workdir/init; every worker builds from these."""
    init = workdir / "init"
    if (init / "config.json").exists():
        return
    tmp = workdir / "init.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    from tinyfactory.lm import arch_for

    arch_for(r.get("arch", "janus")).prepare_init(tmp, r)
    os.replace(tmp, init)


def _stop(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def _worker(target, args) -> None:
    """A part's process: a native crash prints the Python stack that led to it, and a part that returned leaves at
    once. Interpreter teardown is skipped because gloo's threads can abort it ("terminate called without an active
    exception") after the part has saved everything, which would fail a finished phase."""
    import faulthandler

    faulthandler.enable()
    target(*args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_parallel(jobs: list[tuple], done: list[Path]) -> None:
    """Run (target, args) in spawned processes; if one fails, stop the others and fail, unless every part had already
    marked itself done (a crash on the way out loses nothing)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=job) for job in jobs]
    for p in procs:
        p.start()
    import signal

    # a terminated parent takes its workers with it (they would otherwise keep training as orphans)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while any(p.is_alive() for p in procs):
            if any(p.exitcode not in (None, 0) for p in procs):
                break
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    codes = [p.exitcode for p in procs]
    if any(codes) and all(d.exists() for d in done):
        print(f"a worker exited with {codes} after its part was saved and marked done; going on", flush=True)
    elif any(codes):
        raise SystemExit(f"pretraining part failed (exit codes {codes}); rerun to resume")


def export(workdir: Path, out: Path, r: dict, meta: dict) -> None:
    import torch

    from tinyfactory.lm import arch_for

    model, processor = arch_for(r.get("arch", "janus")).export_model(workdir, r)
    model.eval()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with torch.no_grad():
        model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _log_summary(workdir: Path, part: str, keys: tuple[str, ...]) -> dict:
    path = workdir / f"{part}.log.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    head = [x for x in rows if x["step"] == rows[0]["step"]][:1] + rows[1:3]
    tail = rows[-3:]
    return {k: {"first": round(sum(x[k] for x in head) / len(head), 4),
                "last": round(sum(x[k] for x in tail) / len(tail), 4)} for k in keys}


def _part_seconds(workdir: Path, part: str) -> float:
    """Training seconds a part spent over all its invocations: its log's clock restarts at each resume, so the
    segments' last readings add up (steps redone after an interruption count too)."""
    path = workdir / f"{part}.log.jsonl"
    total, last = 0.0, 0.0
    for t in (json.loads(l)["t"] for l in path.read_text().splitlines() if l.strip()):
        if t < last:
            total += last
        last = t
    return round(total + last, 1)


def main(argv=None) -> int:
    from harness.models.checkpoints import BUNDLED, TINY_DIR, TINY_EMU3_DIR, cache_dir
    from tinyfactory.lm import arch_for

    ap = argparse.ArgumentParser(prog="python -m tinyfactory.pretrain", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("janus", "emu3"), default="janus",
                    help="janus: tiny-janus (default); emu3: tiny-emu3")
    ap.add_argument("--quick", action="store_true", help="tiny step counts: checks the pipeline in < 1 minute")
    ap.add_argument("--out", help=f"model folder to write (default {TINY_DIR} or {TINY_EMU3_DIR}; with --quick, "
                                  "<workdir>/model)")
    ap.add_argument("--workdir", help="checkpoints and logs (default ~/.cache/harness/pretrain-tiny-<recipe>)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a recipe value")
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out check after training")
    a = ap.parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    r = recipe_for(a.quick, a.seed, overrides, a.arch)
    arch = arch_for(a.arch)
    name, command = BUNDLED[arch.bundled]
    workdir = Path(a.workdir or cache_dir() / f"{arch.workdir_prefix}{'quick-' if a.quick else ''}{_hash(r)}")
    out = Path(a.out) if a.out else (workdir / "model" if a.quick else arch.bundled)
    workdir.mkdir(parents=True, exist_ok=True)
    saved = workdir / "recipe.json"
    if saved.exists() and json.loads(saved.read_text()) != r:
        raise SystemExit(f"{workdir} holds a run with a different recipe; pass another --workdir")
    saved.write_text(json.dumps(r, indent=1, sort_keys=True))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    print(f"pretraining {name} in {workdir}", flush=True)
    prepare(workdir, r)

    from tinyfactory.lm import lm_worker
    from tinyfactory.vq import vq_worker
    from tinyfactory.workers import vision_worker

    workers = {"vq": (vq_worker, (str(workdir), a.arch)), "vision": (vision_worker, (str(workdir),))}
    todo = [part for part in arch.first_parts if not (workdir / f"{part}.done").exists()]
    if todo:
        print(f"phase 1: {', '.join(workers[part][0].__name__ for part in todo)}", flush=True)
        run_parallel([workers[part] for part in todo], [workdir / f"{part}.done" for part in todo])
    for n, phase in ((2, "und"), (3, "joint"), (4, "focus")):
        if not (workdir / f"{phase}.done").exists():
            print(f"phase {n}: {phase} on 2 ranks", flush=True)
            init_file = workdir / f"dist-{time.time_ns()}"
            run_parallel([(lm_worker, (rank, 2, str(workdir), str(init_file), phase, a.arch)) for rank in range(2)],
                         [workdir / f"{phase}.done"])
            init_file.unlink(missing_ok=True)

    import torch
    import transformers

    from harness.world import WORLD_VERSION

    parts = tuple((p, p) for p in arch.first_parts) + (("und", "und-0"), ("joint", "joint-0"), ("focus", "focus-0"))
    walls = {p: _part_seconds(workdir, log) for p, log in parts}
    steps = {"vq": r["vq_steps"], "understanding": r["und_steps"], "joint": r["joint_steps"],
             "focus": r["focus_steps"]}
    losses = {"vq": _log_summary(workdir, "vq", ("loss",)),
              "understanding": _log_summary(workdir, "und-0", ("loss", "aux")),
              "joint": _log_summary(workdir, "joint-0", ("loss", "gen")),
              "focus": _log_summary(workdir, "focus-0", ("loss", "gen"))}
    if "vision" in arch.first_parts:
        steps["vision"] = r["vision_steps"]
        losses["vision"] = _log_summary(workdir, "vision", ("loss", "shape"))
    meta = {"model": name, "seed": r["seed"], "world_version": WORLD_VERSION, "quick": a.quick, "recipe": r,
            "steps": steps,
            "device": f"cpu: 2 processes x 1 thread ({platform.processor() or platform.machine()})",
            "part_wall_seconds": walls,
            "wall_seconds": round(max(walls[p] for p in arch.first_parts) + walls["und"] + walls["joint"]
                                  + walls["focus"], 1),
            "this_invocation_seconds": round(time.time() - t0, 1),
            "losses": losses,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "python": sys.version.split()[0]},
            "command": command + (" --quick" if a.quick else "")}
    export(workdir, out, r, meta)
    print(f"wrote {out}", flush=True)
    if not a.no_eval and not a.quick:
        from tinyfactory.heldout import evaluate

        meta["heldout"] = evaluate(str(out))
        (out / "training.json").write_text(json.dumps(meta, indent=1))
        print(json.dumps(meta["heldout"], indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
