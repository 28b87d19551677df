"""Training configuration: paper defaults, method presets, the reference-code profile, and validation.

Every method shares one loop and one data stream; a method is a preset of what the adversary does:

    method     attack        decode  filter  buffer  extra loss
    sft        none          -       -       -       -
    noise      gaussian      no      none    no      -
    adv_embed  adversarial   no      none    no      -
    unigame    adversarial   yes     clip    yes     -
    reca       none          -       -       -       reconstruction alignment

Flags (`--filter`, `--buffer/--no-buffer`, `--decode/--no-decode`) override a preset's choices, which is how the
ablation rows of the paper's Table 4 are trained; the run's label names every departure from the preset.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from harness.errors import HarnessError

METHODS = ("sft", "noise", "adv_embed", "unigame", "reca")
ATTACK = {"sft": "none", "noise": "noise", "adv_embed": "adversarial", "unigame": "adversarial", "reca": "none"}
PRESETS = {
    "noise": {"decode": False, "filter": "none", "buffer": False},
    "adv_embed": {"decode": False, "filter": "none", "buffer": False},
    "unigame": {"decode": True, "filter": "clip", "buffer": True},
}
#: the public reference code's behaviour (unigame.md §3); its listed defects are separate switches
REFERENCE = {"gen_lr": 3e-2, "und_lr": 3e-6, "decode": False, "tau_quantile": 0.8, "hinge_weight": 0.2,
             "select_rule": "or", "buffer_pop": True, "separate_hard_step": True, "mine_from": "generation",
             "candidates": 3, "clip_text": "question",
             "clip_weights": "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"}
FILTERS = ("clip", "cosine", "none")
#: hyper-parameters the paper sweeps: a run that changes one gets its own leaderboard row
ABLATED = {"eps_max": "eps", "c_depth": "depth", "ratio": "ratio", "capacity": "capacity", "interface": "interface",
           "gen_lr": "gen_lr", "und_lr": "und_lr", "tau_quantile": "tau", "beta": "beta", "lora_r": "r"}
ADVERSARIAL = ("adv_embed", "unigame")
ABLATED_FOR = {"eps_max": ("noise", *ADVERSARIAL), "c_depth": ADVERSARIAL, "ratio": ADVERSARIAL,
               "capacity": ADVERSARIAL + ("noise",), "interface": ADVERSARIAL + ("noise",), "gen_lr": ADVERSARIAL,
               "und_lr": METHODS, "tau_quantile": ADVERSARIAL + ("noise",), "beta": ("noise", *ADVERSARIAL),
               "lora_r": METHODS}


@dataclass
class TrainConfig:
    # what and where
    model: str = "tiny-janus"
    method: str = "unigame"
    data: str | None = None               # shapes | vqav2 | hub:REPO[:CONFIG]@SPLIT | PATH
    captions: str | None = None           # shapes | none | PATH (image + caption); None: shapes with shapes data
    output: str | None = None
    seed: int = 0
    steps: int = 16000
    batch_size: int = 8                   # global: split evenly over processes
    hard_batch: int | None = None         # global; None: batch_size
    caption_batch: int | None = None      # global; None: batch_size
    shapes_scenes: int = 2000
    init_from: str | None = None
    resume: bool = False
    stop_at: int | None = None            # checkpoint and exit after this step (the schedule still spans --steps)
    device: str | None = None
    fsdp: bool = False                    # shard the LM's decoder layers over the processes (FSDP2)
    # the perturber C
    eps_max: float = 0.02
    c_depth: int = 3
    c_hidden: int | None = None           # None: 256, shrunk to stay under 1% of the model
    c_input_norm: bool = True
    lam: float = 1.0                      # lambda in L_C = CE - lambda * mean ||delta||^2
    interface: str | None = None          # lm: LM-space projection of the codes; code: VQ code embeddings;
                                          # None: the model's own (its hooks' DEFAULT_INTERFACE)
    soft_temperature: float = 0.05
    # the game
    decode: bool | None = None
    filter: str | None = None
    buffer: bool | None = None
    gen_lr: float = 5e-3
    und_lr: float = 2e-5
    ratio: str = "1:1"                    # C updates : U updates
    beta: float = 0.5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup: int | None = None             # None: 5% of the steps (at most 500)
    schedule: str = "cosine"
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    # semantic filter and buffer
    clip_weights: str = "openai/clip-vit-base-patch32"
    clip_mode: str = "text"               # text: image vs caption; image: adversarial vs clean image
    clip_text: str = "caption"            # caption (falls back to question + answer) | question
    clip_threshold: float = 0.6
    clip_scale: str = "clipscore"         # clipscore: 2.5 * max(cos, 0); raw: the cosine itself
    cos_threshold: float = 0.9
    scene_check: str = "auto"             # auto: on when the data carries scenes
    hinge_weight: float = 0.0             # H += w * max(0, margin - CLIP cos); 0.2 in the reference code
    hinge_margin: float = 0.30
    capacity: int = 50
    tau_quantile: float = 0.6
    mine_every: int = 1
    select_rule: str = "and"
    buffer_pop: bool = False
    separate_hard_step: bool = False
    mine_from: str = "attack"             # attack: the C step's candidates; generation: reference sampling
    candidates: int = 1
    # extra losses
    gen_weight: float = 1.0               # teacher-forced generation CE on caption data, when there is any
    reca_weight: float = 1.0
    reca_prompt: str = "Describe the image."
    reca_max_tokens: int = 32
    # precision
    autocast: str = "auto"                # auto: bf16 on CUDA, off on CPU | bf16 | off
    weights_dtype: str = "float32"
    # defects of the reference code, reproducible only on request
    ce_reduction: str = "sample"          # batch: one CE shared by the micro-batch
    delta_dtype: str = "float32"          # bfloat16: perturbation added in bf16
    train_mode: bool = True
    reference_compat: bool = False
    # checkpoints, logs, evaluation
    save_every: int = 500
    keep_last: int | None = None
    eval_tasks: list[str] = field(default_factory=list)
    eval_data: str | None = None
    eval_every: int = 0
    eval_limit: int | None = None
    eval_batch_size: int = 8
    eval_base: bool = True
    results: str = "results"              # the results store `python -m harness run` writes too (its cache reused)
    leaderboards: str | None = None       # default <results>/leaderboards
    plots: bool = True
    include: list[str] = field(default_factory=list)
    explicit: list[str] = field(default_factory=list)   # fields the user set (labels and presets need it)

    # ------------------------------------------------------------------------------------------------ derived
    @property
    def attack(self) -> str:
        return ATTACK[self.method]

    @property
    def adversarial(self) -> bool:
        return self.attack == "adversarial"

    @property
    def c_updates(self) -> tuple[int, int]:
        a, b = self.ratio.split(":")
        return int(a), int(b)

    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else min(500, self.steps // 20)

    def label(self) -> str:
        """The method as a leaderboard row should name it: the preset (or reference profile) plus every departure
        from it that the paper ablates, e.g. unigame(filter=cosine,no-buffer) or unigame(eps=0.05)."""
        parts = []
        baseline = dict(PRESETS.get(self.method, {}))
        if self.reference_compat:
            baseline.update({k: v for k, v in REFERENCE.items() if k in baseline})
        if "decode" in baseline and self.decode != baseline["decode"]:
            parts.append("decode" if self.decode else "no-decode")
        if "filter" in baseline and self.filter != baseline["filter"]:
            parts.append(f"filter={self.filter}")
        if "buffer" in baseline and self.buffer != baseline["buffer"]:
            parts.append("buffer" if self.buffer else "no-buffer")
        defaults = TrainConfig()
        for key, short in ABLATED.items():
            value = getattr(self, key)
            if key in self.explicit and value != getattr(defaults, key) and self.method in ABLATED_FOR[key]:
                parts.append(f"{short}={value}")
        if self.reference_compat:
            parts.append("reference")
        return self.method + (f"({','.join(parts)})" if parts else "")

    def hyper_parameters(self) -> dict:
        # what does not change the trained weights: where things go, what is evaluated, how it is parallelised
        skip = {"model", "output", "resume", "stop_at", "device", "fsdp", "eval_tasks", "eval_data", "eval_every",
                "eval_limit", "eval_batch_size", "eval_base", "results", "leaderboards", "plots", "include",
                "explicit", "keep_last", "init_from", "save_every"}
        return {k: v for k, v in asdict(self).items() if k not in skip}

    # ------------------------------------------------------------------------------------------------ set-up
    def finalise(self) -> "TrainConfig":
        """Apply the method preset and the reference profile under the user's explicit flags, then validate."""
        if self.method not in METHODS:
            close = difflib.get_close_matches(self.method, METHODS, n=1, cutoff=0.4)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise HarnessError(f"unknown method {self.method!r}{hint} (choose from {', '.join(METHODS)})")
        given = set(self.explicit)
        if self.method not in PRESETS:
            bad = sorted(given & {"decode", "filter", "buffer"})
            if bad:
                raise HarnessError(f"--{bad[0]} has no effect with --method {self.method} (no adversary); "
                                   "use it with noise, adv_embed or unigame")
        for key, value in PRESETS.get(self.method, {}).items():
            if key not in given:
                setattr(self, key, value)
        if self.reference_compat:
            if self.method != "unigame":
                raise HarnessError("--reference-compat reproduces the reference UniGame code; use it with "
                                   "--method unigame")
            for key, value in REFERENCE.items():
                if key not in given:
                    setattr(self, key, value)
        self.validate()
        return self

    def validate(self) -> None:
        def need(ok: bool, message: str):
            if not ok:
                raise HarnessError(message)

        need(self.steps >= 1, "--steps must be at least 1")
        need(self.stop_at is None or 1 <= self.stop_at <= self.steps, "--stop-at must be between 1 and --steps")
        need(self.batch_size >= 1, "--batch-size must be at least 1")
        need(self.eps_max > 0, "--eps-max must be positive")
        for flag, value in (("--gen-lr", self.gen_lr), ("--und-lr", self.und_lr)):
            need(value > 0, f"{flag} must be positive (got {value})")
        for flag, value in (("--max-grad-norm", self.max_grad_norm), ("--beta", self.beta), ("--lambda", self.lam),
                            ("--weight-decay", self.weight_decay), ("--gen-weight", self.gen_weight),
                            ("--reca-weight", self.reca_weight), ("--hinge-weight", self.hinge_weight)):
            need(value >= 0, f"{flag} must be 0 or more (got {value})")
        need(0 <= self.lora_dropout < 1, f"--lora-dropout must be in [0, 1) (got {self.lora_dropout})")
        need(self.lora_r >= 1 and self.lora_alpha > 0, "--lora-r must be at least 1 and --lora-alpha positive")
        need(self.candidates >= 1, "--candidates must be at least 1")
        need(self.warmup is None or self.warmup >= 0, "--warmup must be 0 or more")
        need(2 <= self.c_depth <= 8, "--c-depth must be between 2 and 8 (the paper compares 2, 3 and 4)")
        need(self.interface in (None, "lm", "code"), "--interface must be lm or code")
        need(self.filter in (None, *FILTERS), f"--filter must be one of {', '.join(FILTERS)}")
        need(self.clip_mode in ("text", "image"), "--clip-mode must be text or image")
        need(self.clip_scale in ("clipscore", "raw"), "--clip-scale must be clipscore or raw")
        need(self.scene_check in ("auto", "on", "off"), "--scene-check must be auto, on or off")
        need(0 < self.tau_quantile < 1, "--tau must be a quantile strictly between 0 and 1")
        need(self.capacity >= 1, "--capacity must be at least 1")
        need(self.mine_every >= 1, "--mine-every must be at least 1")
        need(self.schedule in ("cosine", "linear", "constant"), "--schedule must be cosine, linear or constant")
        need(self.autocast in ("auto", "bf16", "off"), "--autocast must be auto, bf16 or off")
        need(self.weights_dtype in ("float32", "bfloat16"), "--weights-dtype must be float32 or bfloat16")
        need(not (self.weights_dtype == "bfloat16" and self.autocast == "off"),
             "--weights-dtype bfloat16 needs autocast (the perturbation is float32); drop --autocast off")
        need(self.ce_reduction in ("sample", "batch"), "--ce-reduction must be sample or batch")
        need(self.delta_dtype in ("float32", "bfloat16"), "--delta-dtype must be float32 or bfloat16")
        need(self.save_every >= 0 and self.eval_every >= 0, "--save-every and --eval-every must be >= 0")
        need(self.eval_limit is None or self.eval_limit >= 1, "--eval-limit must be a positive number")
        try:
            a, b = self.c_updates
            need(a >= 0 and b >= 1, "")
        except (ValueError, HarnessError):
            raise HarnessError(f"--ratio {self.ratio!r}: expected C:U with whole numbers, e.g. 1:1 or 1:5") from None
        if self.adversarial:
            need(self.c_updates[0] >= 1, "--ratio 0:U never trains the perturber; use --method sft instead")
        if self.mine_from == "generation":
            need(self.method == "unigame", "generation-side mining needs --method unigame")
        if self.eval_every or self.eval_data or self.eval_limit:
            need(bool(self.eval_tasks), "--eval-every, --eval-data and --eval-limit need --eval TASKS")
        for flag, value in (("--hard-batch", self.hard_batch), ("--caption-batch", self.caption_batch)):
            need(value is None or value >= 1, f"{flag} must be at least 1")
        if self.filter == "clip" and not self.decode and self.mine_from != "generation":
            raise HarnessError("--filter clip needs decoded images; without --decode use --filter cosine or none")
        for flag, value in (("--data", self.data), ("--captions", self.captions), ("--init-from", self.init_from)):
            if value and value not in ("shapes", "none", "vqav2") and not value.startswith("hub:") \
                    and not Path(value).expanduser().exists():
                raise HarnessError(f"{flag} {value}: no such file or folder")

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}
