#!/usr/bin/env bash
# Rebuilds the committed embedded-world leaderboards (leaderboards/world/) from nothing, on a CPU, for both bundled
# architectures (tiny-janus, tiny-emu3):
#   1. each bundled model on every task (tagged as the base row of the post-training table);
#   2. sft, noise, adv_embed, unigame and reca post-trained from it on --data shapes (the world's training mix),
#      3 seeds each, every final checkpoint evaluated on every task;
#   3. every leaderboard built from that one results store, and the README's world table copied from it.
# Usage: bash leaderboards/regenerate_world.sh [WORK_DIR]      (default runs/world; MODELS="tiny-janus" for one)
# About 76 minutes on 2 CPU cores (33 for tiny-janus, 42 for tiny-emu3).
set -euo pipefail
work=${1:-runs/world}
steps=${STEPS:-300}
for model in ${MODELS:-tiny-janus tiny-emu3}; do
    python -m harness run --model "$model" --output "$work/results" --no-progress \
        --tag method=base --tag base_model="$model" --tag step=0 --tag seed=0
    # the tiny models were pretrained with learning rates near 1e-3: the paper's LoRA rate (2e-5) would leave them
    # unchanged
    python bench/methods_world.py --model "$model" --seeds 0,1,2 --steps "$steps" --out "$work" --eval all \
        -- --und-lr 5e-4
done
python -m harness leaderboard --all --results "$work/results" --out leaderboards/world
python leaderboards/readme_table.py
