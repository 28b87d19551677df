"""UniGame: self-adversarial post-training for unified multimodal models, and the methods it is compared with.

    python -m unigame train [--model M] --method sft|noise|adv_embed|unigame|reca [--data D] --steps N
                            [--eval TASKS] [--eval-data shapes] [--eval-every K] [--eval-limit L]
                            [--output DIR] [--seed S] [--init-from CHECKPOINT] [--resume] ...
    torchrun --nproc_per_node N -m unigame train ...          (or: accelerate launch --num_processes N -m unigame)

Trains through the harness's training hooks (harness.models.hooks), writes checkpoints that
`python -m harness run --model <checkpoint>` evaluates, evaluates each finished checkpoint with harness.api.evaluate
and regenerates the leaderboards. Modules:

    config      defaults, method presets, reference-code profile, validation     cli, __main__   the command line
    modeling    loading through the harness adapter, LoRA, freezing              data            training data
    perturber   C and its 1% budget                                              attack          where z is perturbed
    filters     semantic filter (CLIP, cosine, world scene check)                clip            CLIP similarities
    buffer      hard-sample buffer and mining selection                          trainer         the minimax loop
    generation  caption->image loss and RecA                                     refcompat       reference mining
    optim       AdamW, schedule, clipping, NaN guard per player                  dist, fsdp      data parallelism
    checkpoint  atomic checkpoints and exact resume                              stacking        LoRA on LoRA
    dynamics    per-step log and plots                                           evaluation, run train-then-evaluate
    testing     tiny random Janus, Emu3 and CLIP for tests and benchmarks
"""
