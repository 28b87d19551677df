"""Training-step cost benchmark (not a test): seconds per step and peak memory, SFT vs UniGame, same model and batch.

Each method runs in its own process (so peak memory is its own), on the same model, data (the embedded world) and
global batch, for --warmup untimed then --steps timed steps (mean), --repeats times alternately (fastest
kept). Prints per-phase times (prepare / attack / mining / U update) and the ratio UniGame / SFT per step
(target: <= 2x).

    python bench/train_step.py [--model M] [--batch-size 8] [--steps 10] [--lm-heavy] [--clip-weights W]
                               [--ratio 1:4 --mine-every 4]    (a schedule for big models; default the paper's 1:1)
                               [--hard-batch 4]                (fewer hard rows per U step than clean rows)

Without --model it uses the bundled tiny-janus when its weights are present, else a random Janus of the same
shape (64 px, 64 visual tokens, LM 128 x 4). --lm-heavy uses a random Janus whose LM is larger (512 x 8) relative
to the VQ model and vision encoder, closer to the proportions of Janus-Pro, where the LM dominates the step.
Without --clip-weights the semantic filter uses a tiny random CLIP (its cost is then a lower bound). The filter
threshold is 0 and the scene check off, so every candidate passes: the buffer is full from the first step and the
U step always carries its hard rows (the steady state of a long run; a random model would never pass the filter).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHASES = ("t_prepare", "t_attack", "t_mine", "t_update_u")
SHAPES = {"tiny": dict(image_size=64, patch=8, hidden=128, layers=4, heads=4, kv_heads=2, vision_hidden=64,
                       vision_layers=2, codes=512, vq_base=32, vq_latent=64, max_positions=512),
          "lm-heavy": dict(image_size=64, patch=8, hidden=512, layers=8, heads=8, kv_heads=4, vision_hidden=64,
                           vision_layers=2, codes=512, vq_base=32, vq_latent=64, max_positions=512)}


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from unigame import data as data_mod
    from unigame.config import TrainConfig
    from unigame.dist import Dist
    from unigame.dynamics import peak_memory_mb
    from unigame.modeling import load_for_training, resolve
    from unigame.trainer import Trainer

    # steady state: every candidate passes (threshold 0, no scene check), so the buffer is full and the U step
    # carries its hard rows from the start (CLIP still runs and is timed)
    schedule = {"ratio": args.ratio, "mine_every": args.mine_every} if args.worker == "unigame" else {}
    if args.worker == "unigame" and args.hard_batch is not None:
        schedule["hard_batch"] = args.hard_batch
    cfg = TrainConfig(model=args.model, method=args.worker, data="shapes", captions="shapes",
                      steps=args.steps + args.warmup, batch_size=args.batch_size, shapes_scenes=64,
                      clip_weights=args.clip_weights, device=args.device, explicit=sorted(schedule),
                      clip_threshold=0.0, scene_check="off", **schedule).finalise()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    adapter, init = resolve(cfg, device)
    loaded = load_for_training(cfg, adapter, init)
    trainer = Trainer(cfg, loaded, data_mod.load("shapes", "shapes", loaded.hooks.image_size, cfg.shapes_scenes),
                      Dist())
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        m = trainer.train_step(step)
        if step >= args.warmup:
            times.append(m)
    # the mean, not the median: under a 1:k schedule the steps differ on purpose, and a step costs their average
    out = {"method": args.worker, "seconds": statistics.fmean(t["seconds"] for t in times),
           "phases": {p: statistics.fmean(t.get(p, 0.0) for t in times) for p in PHASES},
           "peak_mem_mb": peak_memory_mb(trainer.device),
           "params": loaded.base_params,
           "perturber": trainer.perturber.parameter_count() if trainer.perturber is not None else 0}
    if args.worker == "unigame":
        out["passes"] = passes(trainer, args.warmup, min(4, args.steps))   # the first timed steps' batches
    print("RESULT " + json.dumps(out), flush=True)


def passes(trainer, first_step: int, batches: int = 4, repeats: int = 2) -> dict:
    """Seconds of each pass a UniGame step is made of, each timed alone (the fastest of `repeats`) and averaged
    over `batches` batches: the clean rows of each batch, and the hard rows the U step would draw from the buffer
    as the run left it (they are often longer than the clean rows: the buffer keeps the highest CE). The floor an
    ideal implementation of the same passes on the same rows could reach."""
    from unigame.generation import caption_loss

    cfg, h = trainer.cfg, trainer.hooks

    def fastest(fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
            for p in trainer.lora:
                p.grad = None
        return best

    totals: dict[str, float] = {}
    for step in range(first_step, first_step + batches):
        rows = trainer.data.vqa_batch(step, cfg.batch_size, 0, 1, cfg.seed)
        clean = trainer.prepare(rows)
        z = trainer.adversary.interface_tokens(clean)
        caps = trainer.data.caption_batch(step, cfg.caption_batch or cfg.batch_size, 0, 1, cfg.seed)
        drawn = trainer.buffer.sample(trainer.hard_per, trainer.generator(step, 2)) if trainer.buffer else []
        hard = [trainer.data.vqa[s.row] for s in drawn]
        # the hard rows' prompts and visual tokens, made once: a real run could keep both with the sample
        hard_batch = hard and trainer.understanding_batch(hard)
        hard_visual = hard and trainer.hard_visual([(r, s.kind, s.tensor) for r, s in zip(hard, drawn)]).to(
            clean.visual.dtype)

        def lm_clean():
            trainer._ce(clean.rows, clean.images, clean.visual, clean.batch).mean().backward()

        def lm_hard():
            if hard:
                trainer._ce(hard, [], hard_visual, hard_batch).mean().backward()

        def decoder():
            zp = (z + 0.0).requires_grad_(True)
            trainer.adversary._decode(zp).pow(2).mean().backward()

        def vision():
            pv = h.pixels_to_pixel_values(clean.gen_pixels).requires_grad_(True)
            with trainer.amp():
                h.visual_tokens(pv).float().pow(2).mean().backward()

        def captions():
            caption_loss(h, caps, trainer.row_generators(step, len(caps), 3), 0.1, trainer.amp).backward()

        for name, fn in (("lm_clean", lm_clean), ("lm_hard", lm_hard), ("decoder", decoder), ("vision", vision),
                         ("captions", captions)):
            totals[name] = totals.get(name, 0.0) + fastest(fn) / batches
    return totals


def run_method(method: str, args, model: str, clip: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--model", model, "--clip-weights", clip,
           "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--ratio", args.ratio, "--mine-every", str(args.mine_every)] + \
        (["--device", args.device] if args.device else []) + \
        (["--hard-batch", str(args.hard_batch)] if args.hard_batch is not None else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--lm-heavy", action="store_true")
    p.add_argument("--clip-weights", default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=12, help="timed steps (a multiple of the schedule's k)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="runs per method, alternating; the fastest is kept "
                   "(a shared machine's load only ever slows a run down)")
    p.add_argument("--device", default=None)
    p.add_argument("--ratio", default="1:1", help="UniGame's C:U schedule (1:4: the adversary updates every 4th step)")
    p.add_argument("--mine-every", type=int, default=1, help="UniGame mines hard samples every m steps")
    p.add_argument("--hard-batch", type=int, default=None, help="UniGame's hard rows per U step (default: as many "
                   "as clean rows, --batch-size, as `unigame train` does)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    from harness.models.checkpoints import TINY_DIR
    from unigame.testing import tiny_clip, tiny_janus

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-step-"))
    model = args.model
    shape = "lm-heavy" if args.lm_heavy else "tiny"
    if model is None and not args.lm_heavy and (TINY_DIR / "config.json").is_file():
        model, shape = "tiny-janus", "bundled tiny-janus"
    if model is None:
        model = str(tiny_janus(tmp / "janus", **SHAPES[shape]))
        shape = f"random Janus ({shape})"
    clip = args.clip_weights or str(tiny_clip(tmp / "clip", image_size=224))
    print(f"model: {args.model or shape}; batch {args.batch_size}; {args.steps} timed steps after {args.warmup}; "
          f"{args.threads} thread(s); CLIP: {args.clip_weights or 'tiny random (224 px)'}; UniGame schedule "
          f"C:U {args.ratio}, mining every {args.mine_every} step(s); hard rows per U step "
          f"{args.hard_batch if args.hard_batch is not None else args.batch_size}")
    results: dict[str, dict] = {}
    for _ in range(args.repeats):        # alternate the methods; keep each one's least disturbed run
        for m in ("sft", "unigame"):
            r = run_method(m, args, model, clip)
            if m not in results or r["seconds"] < results[m]["seconds"]:
                results[m] = r
    print(f"\n{'method':<10}{'s/step':>9}{'prepare':>9}{'attack':>9}{'mining':>9}{'U step':>9}{'peak MB':>10}")
    for m, r in results.items():
        ph = r["phases"]
        print(f"{m:<10}{r['seconds']:>9.3f}" + "".join(f"{ph[k]:>9.3f}" for k in PHASES)
              + f"{r['peak_mem_mb']:>10.0f}")
    ps = results["unigame"]["passes"]
    sft_floor = ps["lm_clean"] + ps["captions"]
    # the attack (decoder, understanding encoder and LM forward+backward on the batch) runs on the adversary's
    # steps, one in k; the U step (the LM on the clean and the hard rows, and the caption loss) on every step
    k = int(args.ratio.split(":")[1]) // max(1, int(args.ratio.split(":")[0]))
    attack = ps["decoder"] + ps["vision"] + ps["lm_clean"]
    unigame_floor = attack / max(1, k) + ps["lm_clean"] + ps["lm_hard"] + ps["captions"]
    print(f"\npasses, each timed alone on the first {min(4, args.steps)} timed batches (mean; forward + backward, "
          "seconds): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ps.items()))
    print(f"an ideal implementation of the same passes at this schedule: SFT {sft_floor:.3f} s, UniGame "
          f"{unigame_floor:.3f} s ({unigame_floor / sft_floor:.2f}x)")
    ratio = results["unigame"]["seconds"] / results["sft"]["seconds"]
    mem = results["unigame"]["peak_mem_mb"] / max(results["sft"]["peak_mem_mb"], 1e-9)
    print(f"\nunigame / sft per step: {ratio:.2f}x (target <= 2x: {'met' if ratio <= 2 else 'NOT met'}); "
          f"peak memory {mem:.2f}x; model {results['sft']['params']:,} parameters, "
          f"perturber {results['unigame']['perturber']:,}")


if __name__ == "__main__":
    main()
