"""The minimax loop: per step, C updates (ascent on the understanding loss of its decoded candidates), mining into
the hard-sample buffer, then one U update (LoRA) on clean + beta * hard samples.

Randomness is a function of (seed, rank, step) only: the global RNG (dropout) is reseeded at every step and every
other draw uses a generator seeded the same way, so a resumed run repeats the losses of an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass

import torch

from unigame.attack import Adversary, Candidates
from unigame.buffer import HardBuffer, HardSample, rank_share, select, threshold
from unigame.data import pil
from unigame.filters import SemanticFilter
from unigame.generation import caption_loss, reca_loss
from unigame.modeling import trainable
from unigame.optim import Player
from unigame.perturber import Perturber, fit_hidden

CORRECT = math.log(2)     # teacher-forced "correct": geometric-mean answer-token probability above 1/2
SUMMED = ("asr_hits", "asr_base", "pushed", "candidates", "passed", "skipped_u", "skipped_c", "samples")


@dataclass
class Clean:
    rows: list[dict]
    images: list
    batch: object                    # UnderstandingBatch of the clean rows
    visual: torch.Tensor             # clean visual tokens (no gradient: encoder and aligner are frozen)
    gen_pixels: torch.Tensor | None  # the images at the generation resolution, for VQ encoding


def seeded(words: list) -> torch.Generator:
    """A generator seeded by a list of ints and strings (stable across processes and Python runs)."""
    digest = hashlib.sha256(repr(words).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % (2 ** 63))


def autocast_for(cfg, device: torch.device):
    """bf16 autocast for the heavy forwards: on GPUs by default, and always with bf16 base weights (their
    matmuls with the float32 perturbation need it)."""
    on = cfg.autocast == "bf16" or (cfg.autocast == "auto" and (device.type == "cuda"
                                                                 or cfg.weights_dtype == "bfloat16"))
    return (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if on else contextlib.nullcontext


class Trainer:
    def __init__(self, cfg, loaded, data, dist, clip=None):
        self.cfg, self.loaded, self.data, self.dist = cfg, loaded, data, dist
        self.hooks = loaded.hooks
        self.device = self.hooks.device
        self.amp = autocast_for(cfg, self.device)
        self.lora = trainable(loaded)
        self.u = Player("U", self.lora, cfg.und_lr, cfg, dist)
        self.hard_per = max(1, (cfg.hard_batch or cfg.batch_size) // dist.world)
        self.perturber, self.c, self.note = None, None, ""
        self.adversary = Adversary(cfg, self.hooks, None, self.amp)
        if cfg.adversarial:
            dim = self.adversary.token_dim
            hidden, self.note = fit_hidden(dim, cfg.c_depth, loaded.base_params, cfg.c_hidden)
            torch.manual_seed(cfg.seed)          # the same C on every rank
            self.perturber = Perturber(dim, hidden, cfg.c_depth, cfg.eps_max, cfg.c_input_norm).to(self.device)
            self.adversary.perturber = self.perturber
            self.c = Player("C", list(self.perturber.parameters()), cfg.gen_lr, cfg, dist)
        self.filter = None
        if cfg.attack != "none":
            has_scenes = any(r.get("scene") for r in data.vqa[:50])
            self.filter = SemanticFilter(cfg, self.device, has_scenes, clip)
        self.buffer = (HardBuffer(rank_share(cfg.capacity, dist.rank, dist.world), cfg.buffer_pop)
                       if cfg.buffer else None)
        self.step = 0
        self.model_train_mode()

    def model_train_mode(self) -> None:
        self.hooks.train(self.cfg.train_mode)

    def generator(self, step: int, *keys: int) -> torch.Generator:
        return seeded([self.cfg.seed, self.dist.rank, step, *keys])

    def row_generators(self, step: int, n: int, key: int) -> list[torch.Generator]:
        """One generator per row, keyed by the row's position in the global batch, so draws for a row do not depend
        on how many processes share the batch."""
        first = self.dist.rank * n
        return [seeded([self.cfg.seed, "row", step, key, first + i]) for i in range(n)]

    def needs_candidates(self, step: int) -> bool:
        """Whether this step uses candidates besides a C update: without a buffer the hard term is this step's
        filtered candidates; with one, only mining steps look at them (so a C:U = 1:k schedule with --mine-every k
        costs about an SFT step on its U-only steps)."""
        return self.buffer is None or (self.cfg.mine_from == "attack" and step % self.cfg.mine_every == 0)

    def c_updates_at(self, step: int) -> int:
        """C updates on `step`: a per b steps, the first on step 0, so a 1:k schedule updates C on the steps
        --mine-every k mines (0, k, 2k, ...) and the update's candidates are the ones mined: one attack per k
        steps, not an update and a separate no-gradient attack."""
        a, b = self.cfg.c_updates
        return _ceil_div((step + 1) * a, b) - _ceil_div(step * a, b)

    # ------------------------------------------------------------------------------------------------ step
    def train_step(self, step: int) -> dict:
        cfg, t0 = self.cfg, time.perf_counter()
        torch.manual_seed(int(self.generator(step).initial_seed()))
        rows = self.data.vqa_batch(step, cfg.batch_size, self.dist.rank, self.dist.world, cfg.seed)
        clean = self.prepare(rows)
        m: dict = {"samples": len(rows)}
        mark = self._timer(m, t0)
        mark("t_prepare")
        cands = None
        if cfg.attack != "none" and (self.c_updates_at(step) or self.needs_candidates(step)):
            z = self.adversary.interface_tokens(clean)
            if cfg.attack == "noise":
                cands = self.adversary.noise(clean, z, self.row_generators(step, len(rows), 1))
                m.update(eps=cands.eps, delta_rel=cands.delta_rel)
            else:
                for _ in range(self.c_updates_at(step)):
                    cands = self.c_update(clean, z, m)
                if cands is None:            # U-only step of a C:U < 1 schedule: candidates from the current C
                    with torch.no_grad():
                        cands = self.adversary.adversarial(clean, z)
        mark("t_attack")
        hard = self.hard_samples(step, clean, cands, m)
        mark("t_mine")
        self.u_update(step, clean, hard, cands, m)
        mark("t_update_u")
        for player in (self.u, self.c):
            if player is not None:
                player.step_schedule()
        m["seconds"] = time.perf_counter() - t0
        self.step = step + 1
        return m

    def _timer(self, m: dict, start: float):
        """mark(name) records the seconds since the previous mark (phases of a step, for the log and the bench)."""
        last = [start]

        def mark(name: str) -> None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            m[name] = now - last[0]
            last[0] = now
        return mark

    def prepare(self, rows: list[dict]) -> Clean:
        h = self.hooks
        images = [pil(r["image"]) for r in rows]
        batch = self.understanding_batch(rows, images)
        with torch.no_grad(), self.amp():
            visual = h.visual_tokens(batch.pixel_values)
        needs_pixels = self.cfg.decode and self.cfg.attack != "none" or self.cfg.mine_from == "generation"
        gen_pixels = h.images_to_pixels(images) if needs_pixels else None
        return Clean(rows, images, batch, visual, gen_pixels)

    def c_update(self, clean: Clean, z: torch.Tensor, m: dict) -> Candidates:
        """One ascent step of C on CE - lambda * ||delta||^2; LoRA is held fixed (no weight gradients)."""
        for p in self.lora:
            p.requires_grad_(False)
        try:
            cands = self.adversary.adversarial(clean, z)
            objective = cands.ce.mean() - self.cfg.lam * cands.penalty
            finite = self.c.backward(-objective)
        finally:
            for p in self.lora:
                p.requires_grad_(True)
        info = self.c.update(finite)
        m.update(loss_c=float(objective.detach()), ce_adv=float(cands.ce.detach().mean()), eps=cands.eps,
                 delta_rel=cands.delta_rel, grad_norm_c=info["grad_norm"], lr_c=self.c.lr,
                 skipped_c=m.get("skipped_c", 0) + int(info["skipped"]))
        cands.ce = cands.ce.detach()
        return cands

    # ------------------------------------------------------------------------------------------------ mining
    def hard_samples(self, step: int, clean: Clean, cands: Candidates | None, m: dict) -> list[tuple]:
        """(row, kind, tensor) triples for the hard term: buffer samples, or this step's filtered candidates."""
        cfg = self.cfg
        if cfg.mine_from == "generation" and self.buffer is not None:
            if step % cfg.mine_every == 0:
                from unigame.refcompat import mine_generated

                mine_generated(self, step, clean, m)
        elif cands is not None and self.needs_candidates(step):
            verdict = self.filter.check(clean.rows, cands.pixels, cands.visual, clean.visual, clean.gen_pixels)
            hardness = cands.ce.detach().cpu().float() + verdict.hinge
            m.update(candidates=len(clean.rows), passed=int(verdict.passed.sum()))
            if verdict.similarity is not None:
                m["similarity"] = float(verdict.similarity.float().mean())
            if verdict.scene_ok is not None:
                m["scene_ok"] = float(verdict.scene_ok.float().mean())
            if self.buffer is None:
                keep = verdict.passed.nonzero().flatten().tolist()
                return [(clean.rows[i], cands.kind, cands.inputs[i]) for i in keep]
            if step % cfg.mine_every == 0:
                tau = threshold(self.dist.gather(hardness), cfg.tau_quantile)
                chosen = select(hardness, verdict.passed, tau, cfg.select_rule, verdict.low_clip)
                self.push(step, clean.rows, hardness, cands, chosen, m)
                m["tau"] = tau
        if self.buffer is None:
            return []
        m.update({f"buffer_{k}": v for k, v in self.buffer.stats().items()})
        items = self.buffer.sample(self.hard_per, self.generator(step, 2))
        return [(self.data.vqa[s.row], s.kind, s.tensor) for s in items]

    def push(self, step, rows, hardness, cands, chosen, m, inputs=None, kind=None) -> None:
        inputs = cands.inputs if inputs is None else inputs
        new = [HardSample(float(hardness[i]), step, rows[i]["row"], kind or cands.kind, inputs[i].detach().cpu(),
                          {"id": rows[i].get("id"), "question": rows[i]["question"], "answer": rows[i]["answer"]})
               for i in chosen.nonzero().flatten().tolist()]
        m["pushed"] = m.get("pushed", 0) + self.buffer.push(new)
        m["hard_h_mean"] = float(hardness.mean())

    # ------------------------------------------------------------------------------------------------ U
    def hard_visual(self, hard: list[tuple]) -> torch.Tensor | None:
        if not hard:
            return None
        kind = hard[0][1]
        stacked = torch.stack([t for _, _, t in hard]).to(self.device)
        if kind == "visual":
            return stacked
        with torch.no_grad(), self.amp():
            return self.hooks.visual_tokens(stacked)

    def understanding_batch(self, rows: list[dict], images: list | None = None):
        """The understanding inputs of `rows`: question, answer and the prompt layout of their images (read from
        the rows unless given)."""
        images = [pil(r["image"]) for r in rows] if images is None else images
        return self.hooks.understanding_batch(images, [r["question"] for r in rows], [r["answer"] for r in rows])

    def _ce(self, rows: list[dict], images: list, visual: torch.Tensor, batch=None) -> torch.Tensor:
        """Per-sample answer CE of `rows` with `visual` at their image placeholders (the images only give the
        prompt layout; their pixels are not used)."""
        if batch is None:
            batch = self.understanding_batch(rows, images)
        with self.amp():
            return self.hooks.answer_loss(batch, visual).float()

    def understanding_ce(self, clean: Clean, hard: list[tuple]) -> torch.Tensor:
        """Per-sample CE of the clean rows followed by the hard rows.

        Two LM forwards, each padded to its own longest row: in one batch every clean row would be padded to the
        longest hard row (one captioning prompt among one-word questions made the U step 1.5x the cost of its
        two halves). Under --fsdp one forward, because every rank must run as many sharded forwards as the others
        and a rank's share of the buffer may still be empty."""
        if not hard:
            return self._ce(clean.rows, clean.images, clean.visual, clean.batch)
        rows = [r for r, _, _ in hard]
        images = [pil(r["image"]) for r in rows]
        visual = self.hard_visual(hard).to(clean.visual.dtype)
        if self.cfg.fsdp:
            return self._ce(clean.rows + rows, clean.images + images, torch.cat([clean.visual, visual]))
        return torch.cat([self._ce(clean.rows, clean.images, clean.visual, clean.batch),
                          self._ce(rows, images, visual)])

    def side_losses(self, step: int, clean: Clean, m: dict) -> torch.Tensor:
        cfg, zero = self.cfg, torch.zeros((), device=self.device)
        total = zero
        caps = self.data.caption_batch(step, cfg.caption_batch or cfg.batch_size, self.dist.rank, self.dist.world,
                                       cfg.seed)
        if caps and cfg.gen_weight > 0:
            gen = caption_loss(self.hooks, caps, self.row_generators(step, len(caps), 3), 0.1, self.amp)
            m["loss_gen"] = float(gen.detach())
            total = total + cfg.gen_weight * gen
        if cfg.method == "reca":
            rec, _ = reca_loss(self.loaded.adapter, self.hooks, caps or clean.rows, cfg, self.amp)
            m["loss_reca"] = float(rec.detach())
            total = total + cfg.reca_weight * rec
        return total

    def u_update(self, step: int, clean: Clean, hard: list[tuple], cands: Candidates | None, m: dict) -> None:
        cfg, b = self.cfg, len(clean.rows)
        # every rank must take the same number of steps (each one is a collective), buffers or not
        separate = cfg.separate_hard_step and self.dist.any(bool(hard), self.device)
        ce = self.understanding_ce(clean, [] if separate else hard)
        ce_clean, ce_hard = ce[:b], ce[b:]
        loss = ce_clean.mean() + self.side_losses(step, clean, m)
        if len(ce_hard):
            loss = loss + cfg.beta * ce_hard.mean()
            m["loss_hard"] = float(ce_hard.detach().mean())
        m.update(loss_clean=float(ce_clean.detach().mean()), loss_u=float(loss.detach()), lr_u=self.u.lr)
        info = self.u.update(self.u.backward(loss))
        m.update(grad_norm_u=info["grad_norm"], skipped_u=int(info["skipped"]))
        if separate:       # reference code: a second LoRA step on the buffer samples alone, no beta
            rows = [r for r, _, _ in hard]
            if hard:
                hard_loss = self._ce(rows, [pil(r["image"]) for r in rows], self.hard_visual(hard)).mean()
                m["loss_hard"] = float(hard_loss.detach())
            else:          # nothing stored on this rank yet: contribute a zero gradient to the average
                hard_loss = sum(p.sum() for p in self.lora) * 0.0
            info = self.u.update(self.u.backward(hard_loss))
            m["skipped_u"] += int(info["skipped"])
        if cands is not None:
            clean_ok = ce_clean.detach().cpu() < CORRECT
            adv_ok = cands.ce.detach().cpu() < CORRECT
            m.update(asr_hits=int((clean_ok & ~adv_ok).sum()), asr_base=int(clean_ok.sum()),
                     attack_gain=float((cands.ce.detach().cpu() - ce_clean.detach().cpu()).mean()))

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"step": self.step, "u": self.u.state_dict(), "c": self.c.state_dict() if self.c else None}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        self.u.load_state_dict(state["u"])
        if self.c is not None:
            self.c.load_state_dict(state["c"])


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def merge_metrics(per_rank: list[dict]) -> dict:
    """One log line from every rank's metrics: counts summed, everything else averaged (NaN-aware)."""
    out: dict = {}
    keys = dict.fromkeys(k for m in per_rank for k in m)
    for k in keys:
        values = [m[k] for m in per_rank if k in m and m[k] is not None]
        if k in SUMMED or k in ("buffer_size", "buffer_pushed", "buffer_evicted"):
            out[k] = sum(values)
        else:
            finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]
            out[k] = sum(finite) / len(finite) if finite else float("nan")
    if out.get("asr_base"):
        out["asr"] = out["asr_hits"] / out["asr_base"]
    return out
