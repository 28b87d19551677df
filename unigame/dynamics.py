"""Training dynamics: one JSON line per step (rank 0) and PNG plots drawn from that log at every checkpoint.

Columns: step, loss_u (the U objective), loss_clean, loss_hard, loss_gen, loss_reca, loss_c (the C objective
CE - lambda ||delta||^2, which C maximises), ce_adv, eps, delta_rel (||delta|| / ||z||), attack_gain (CE on the
candidates minus clean CE), asr (attack success rate: the share of rows answered correctly on the clean input,
teacher-forced geometric-mean token probability > 1/2, that are not on the perturbed input), candidates, passed
(semantic filter), pushed, tau, buffer_* (size and H quantiles), grad norms, learning rates, skipped_u/skipped_c
(non-finite steps skipped), seconds, samples_per_s, peak_mem_mb.
"""
from __future__ import annotations

import json
import math
import resource
from pathlib import Path

import torch


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # Linux reports KiB


class StepLog:
    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Drop lines past `step` (a resumed run rewrites them)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")


def read(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get(key) is not None:
            xs.append(r["step"])
            ys.append(r[key])
    return xs, ys


def _smooth(ys: list[float], window: int) -> list[float]:
    out, acc = [], []
    for y in ys:
        acc.append(y)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def plot(log_path: Path, out_dir: Path, title: str = "") -> list[Path]:
    """players.png (both players' objectives), dominance.png (who is winning), clean_vs_hard.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read(log_path)
    if not records:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    window = max(1, len(records) // 50)
    written = []

    def figure(name: str, draw) -> None:
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
        draw(ax)
        ax.set_xlabel("step")
        ax.set_title(f"{title} {name.replace('_', ' ')}".strip())
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)

    def players(ax):
        for key, label in (("loss_u", "U: clean + beta * hard (minimised)"), ("loss_c", "C: CE - lambda |delta|^2 "
                                                                              "(maximised)")):
            xs, ys = _series(records, key)
            if xs:
                ax.plot(xs, _smooth(ys, window), label=label)

    def dominance(ax):
        xs, gain = _series(records, "attack_gain")
        if xs:
            g = _smooth(gain, window)
            ax.plot(xs, g, color="black", lw=1, label="CE(adversarial) - CE(clean)")
            ax.fill_between(xs, g, 0, where=[v > 0 for v in g], color="tab:red", alpha=0.3, label="C dominates")
            ax.fill_between(xs, g, 0, where=[v <= 0 for v in g], color="tab:blue", alpha=0.3, label="U dominates")
        xs, asr = _series(records, "asr")
        if xs:
            ax.plot(xs, _smooth(asr, window), color="tab:orange", lw=1, label="attack success rate")

    def clean_vs_hard(ax):
        for key, label in (("loss_clean", "clean CE"), ("loss_hard", "hard CE (buffer / candidates)"),
                           ("ce_adv", "CE on fresh candidates")):
            xs, ys = _series(records, key)
            if xs:
                ax.plot(xs, _smooth(ys, window), label=label)

    figure("players", players)
    figure("dominance", dominance)
    figure("clean_vs_hard", clean_vs_hard)
    return written
