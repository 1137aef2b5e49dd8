#!/usr/bin/env bash
# Train the five zoo models at once on one GPU (the way the shipped zoo was trained).
#
#   scripts/train_zoo_gpu.sh OUT [TIME_BUDGET_S] [MAX_STEPS] [extra dodoco zoo train args...]
#
# Each family runs in its own process: the models are tiny, so one process leaves the GPU mostly idle
# (kernel-launch bound) and five side by side train ~5x faster in total. Each process gets
# TIME_BUDGET_S seconds (--time-budget picks the step count after warm-up, capped at MAX_STEPS; the
# model card records the steps, and `dodoco zoo train --family F --steps N` reproduces a model).
# Writes OUT/<family>.safetensors and OUT/meta.tar (config.json, README.md, train_log.jsonl of each
# family, the logs); copy them into src/dodoco/data/zoo/<family>/ with scripts/install_zoo.sh.
set -u
OUT=${1:?usage: train_zoo_gpu.sh OUT [TIME_BUDGET_S] [MAX_STEPS] [args...]}
BUDGET=${2:-400}
STEPS=${3:-1600}
shift $(( $# < 3 ? $# : 3 ))
export PYTHONUNBUFFERED=1 PYTHONPATH=src TRANSFORMERS_VERBOSITY=error OMP_NUM_THREADS=3
WORK=$(mktemp -d /tmp/zoo.XXXX)
mkdir -p "$OUT"
for f in deepseek_v2 deepseek_moe qwen3_moe nemotron_h qwen3_5_moe; do
  ( timeout $(( BUDGET * 135 / 100 )) python -m dodoco.training.train --family "$f" --out "$WORK" \
      --steps "$STEPS" --time-budget "$BUDGET" --log-every 100 \
      --note "the five zoo models trained side by side on this one GPU" "$@" > "$WORK/$f.log" 2>&1
    echo "$f rc=$?" >> "$WORK/rc.txt" ) &
done
wait
cd "$WORK" || exit 1
for f in */; do f=${f%/}; [ -f "$f/model.safetensors" ] && cp "$f/model.safetensors" "$OUT/$f.safetensors"; done
tar cf "$OUT/meta.tar" rc.txt ./*.log ./*/config.json ./*/README.md ./*/train_log.jsonl 2>/dev/null
cat rc.txt
grep -h "held-out loss\|steps fit\|experts implementation\|Error\|error" ./*.log | grep -v "^\s*$" | tail -40
