"""`python -m unigame train ...` (also the `unigame` console script, `accelerate launch -m unigame train ...` and
`torchrun --nproc_per_node N -m unigame train ...`). Bad flags give one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys
import warnings

from harness import termination
from harness.errors import HarnessError, RunFailed

from unigame.config import FILTERS, METHODS, TrainConfig

D = TrainConfig()
# how every ending that keeps the checkpoints tells the user to go on
RESUME = "rerun the same command with --resume to continue from the last checkpoint"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class _Parser(argparse.ArgumentParser):
    def error(self, message):              # argparse's multi-line usage dump -> our one-line style
        raise HarnessError(f"{self.prog}: {message} (see --help)")


# (flag, field, type, help); the default shown is TrainConfig's
FLAGS = [
    ("--model", "model", str, "model to post-train: registered name, hub id or folder"),
    ("--method", "method", str, f"one of {', '.join(METHODS)}"),
    ("--data", "data", str, "VQA data: shapes | vqav2 | hub:ORG/NAME[:CONFIG]@SPLIT | PATH (VQAv2 schema); "
                            "default: the model's own (shapes for tiny-janus)"),
    ("--captions", "captions", str, "image-caption data for the generation side: shapes | none | PATH "
                                    "(default: shapes with --data shapes, else none)"),
    ("--steps", "steps", int, "training steps"),
    ("--batch-size", "batch_size", int, "global VQA batch (split over processes)"),
    ("--hard-batch", "hard_batch", int, "global number of buffer samples per U step (default: --batch-size)"),
    ("--caption-batch", "caption_batch", int, "global caption rows per step (default: --batch-size)"),
    ("--stop-at", "stop_at", int, "checkpoint and exit after this step; --resume continues (the LR schedule "
                                  "still spans --steps)"),
    ("--seed", "seed", int, "training seed (initialisation, order, dropout)"),
    ("--output", "output", str, "run folder (default runs/<model>/<method>-s<seed>)"),
    ("--init-from", "init_from", str, "stack on a trainer checkpoint (e.g. UniGame on top of RecA)"),
    ("--device", "device", str, "cpu, cuda, cuda:1 (default: one GPU per process, else CPU)"),
    ("--shapes-scenes", "shapes_scenes", int, "scenes of the embedded world to train on"),
    ("--eps-max", "eps_max", float, "perturbation budget per token"),
    ("--c-depth", "c_depth", int, "perturber layers (2, 3 or 4 in the paper)"),
    ("--c-hidden", "c_hidden", int, "perturber width (default 256, shrunk to stay under 1%% of the model)"),
    ("--lambda", "lam", float, "weight of ||delta||^2 in the perturber's objective"),
    ("--interface", "interface", str, "where z lives when decoding (default: the model's own, lm for Janus, code "
                                      "for Emu3): lm (LM-space embeddings of the VQ codes) "
                                      "or code (VQ code embeddings)"),
    ("--filter", "filter", str, f"semantic filter: {', '.join(FILTERS)}"),
    ("--gen-lr", "gen_lr", float, "perturber learning rate"),
    ("--und-lr", "und_lr", float, "LoRA learning rate"),
    ("--ratio", "ratio", str, "C updates : U updates, e.g. 1:1, 1:5"),
    ("--beta", "beta", float, "weight of the hard-sample term in L_U"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay (both players)"),
    ("--max-grad-norm", "max_grad_norm", float, "gradient clipping (0: off)"),
    ("--warmup", "warmup", int, "warmup steps (default 5%% of --steps, at most 500)"),
    ("--schedule", "schedule", str, "cosine | linear | constant"),
    ("--lora-r", "lora_r", int, "LoRA rank"),
    ("--lora-alpha", "lora_alpha", int, "LoRA alpha"),
    ("--lora-dropout", "lora_dropout", float, "LoRA dropout"),
    ("--lora-targets", "lora_targets", _csv, "comma-separated projection names (default: all of the hooks')"),
    ("--clip-weights", "clip_weights", str, "CLIP for the semantic filter: transformers folder or hub id"),
    ("--clip-mode", "clip_mode", str, "text (image vs caption) or image (adversarial vs clean image)"),
    ("--clip-text", "clip_text", str, "caption (else question + answer) or question"),
    ("--clip-threshold", "clip_threshold", float, "pass threshold on --clip-scale"),
    ("--clip-scale", "clip_scale", str, "clipscore (2.5 * max(cos, 0)) or raw cosine"),
    ("--cos-threshold", "cos_threshold", float, "pass threshold of --filter cosine"),
    ("--scene-check", "scene_check", str, "auto | on | off: the world parser must read the same scene"),
    ("--hinge-weight", "hinge_weight", float, "H += w * max(0, margin - CLIP cos)"),
    ("--hinge-margin", "hinge_margin", float, "margin of the CLIP hinge"),
    ("--capacity", "capacity", int, "hard-sample buffer capacity"),
    ("--tau", "tau_quantile", float, "mining threshold: quantile of H in the batch"),
    ("--mine-every", "mine_every", int, "mine every m steps"),
    ("--candidates", "candidates", int, "candidates per sample (generation-side mining)"),
    ("--gen-weight", "gen_weight", float, "weight of the caption -> image loss (when there are captions)"),
    ("--reca-weight", "reca_weight", float, "weight of the RecA loss"),
    ("--reca-prompt", "reca_prompt", str, "prompt RecA uses to caption an image with the model itself"),
    ("--autocast", "autocast", str, "auto (bf16 on GPUs) | bf16 | off"),
    ("--weights-dtype", "weights_dtype", str, "float32 | bfloat16 for the frozen base weights"),
    ("--ce-reduction", "ce_reduction", str, "sample | batch (reference-code defect)"),
    ("--delta-dtype", "delta_dtype", str, "float32 | bfloat16 (reference-code defect)"),
    ("--save-every", "save_every", int, "checkpoint every N steps (and at the end)"),
    ("--keep-last", "keep_last", int, "keep only the newest N checkpoints"),
    ("--eval", "eval_tasks", _csv, "tasks or suites to evaluate each finished checkpoint on"),
    ("--eval-data", "eval_data", str, "evaluation data source (e.g. shapes)"),
    ("--eval-every", "eval_every", int, "also evaluate every K steps"),
    ("--eval-limit", "eval_limit", int, "documents per task"),
    ("--eval-batch-size", "eval_batch_size", int, "evaluation batch size"),
    ("--results", "results", str, "results store to write evaluations into, shared with `python -m harness run` "
                                  "(cached answers are reused; every leaderboard sees every run)"),
    ("--leaderboards", "leaderboards", str, "where to regenerate the leaderboards (default <results>/leaderboards)"),
]
SWITCHES = [  # (flag, field, value, help)
    ("--resume", "resume", True, "continue from the newest complete checkpoint in --output"),
    ("--reference-compat", "reference_compat", True, "the public reference code's behaviour (unigame.md §3)"),
    ("--buffer", "buffer", True, "use the hard-sample buffer"),
    ("--no-buffer", "buffer", False, "no buffer: the hard term uses this step's filtered candidates"),
    ("--decode", "decode", True, "perturb at the generation interface and decode (UniGame)"),
    ("--no-decode", "decode", False, "perturb the understanding visual tokens, no decoding"),
    ("--no-input-norm", "c_input_norm", False, "no parameter-free LayerNorm at the perturber's input"),
    ("--eval-mode-training", "train_mode", False, "never put the model in train mode (reference-code defect)"),
    ("--separate-hard-step", "separate_hard_step", True, "a second LoRA step on buffer samples, no beta"),
    ("--buffer-pop", "buffer_pop", True, "sampled buffer items leave the buffer"),
    ("--no-eval-base", "eval_base", False, "do not evaluate the base model"),
    ("--no-plots", "plots", False, "do not draw PNG plots"),
    ("--fsdp", "fsdp", True, "shard the LM's decoder layers (base weights and LoRA) over the processes (FSDP2) "
                             "instead of replicating them"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unigame", description="UniGame and the post-training methods it is compared with")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("train", help="train, checkpoint, evaluate, regenerate leaderboards",
                       description="Train one method; evaluate each finished checkpoint with the harness.")
    for flag, dest, kind, text in FLAGS:
        default = getattr(D, dest)
        shown = f" (default {default})" if default not in (None, [], "") else ""
        p.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS, help=text + shown)
    for flag, dest, value, text in SWITCHES:
        p.add_argument(flag, dest=dest, action="store_const", const=value, default=argparse.SUPPRESS, help=text)
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="import a Python file or folder registering extra tasks, models or scorers")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.field_names() and k != "include"}
    cfg = TrainConfig(**given, include=list(args.include), explicit=sorted(given))
    return cfg.finalise()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # raised by peft inside transformers on every adapter load; nothing a user of this command can act on
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 0
        from harness import registry, slurm

        slurm.adopt()           # before anything reads the rank: srun's tasks carry Slurm's variables only
        registry.include(args.include)
        cfg = config_from_args(args)
        from unigame.run import train

        with termination.sigterm_as_interrupt():
            train(cfg)
        from harness import distributed

        distributed.shutdown()
        return 0
    except (HarnessError, OSError, KeyboardInterrupt) as e:
        code = termination.end_command(e, resume=RESUME, debug=debug)
        if code is None:
            raise
        return code
    except Exception as e:
        from harness.runner import is_out_of_memory

        if debug or not is_out_of_memory(e):
            raise
        error = " ".join(str(e).split())[:300]
        print(f"error: out of memory while training ({type(e).__name__}: {error}); lower --batch-size or "
              "--hard-batch, keep the frozen base in bfloat16 (--weights-dtype bfloat16) or shard it over the "
              f"processes (--fsdp), then {RESUME} (--debug shows where it ran out)", file=sys.stderr)
        return RunFailed.exit_code


if __name__ == "__main__":
    sys.exit(main())
