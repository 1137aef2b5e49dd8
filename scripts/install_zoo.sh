#!/usr/bin/env bash
# Install zoo models written by scripts/train_zoo_gpu.sh into the package data (src/dodoco/data/zoo/).
#
#   scripts/install_zoo.sh OUT
set -eu
OUT=${1:?usage: install_zoo.sh OUT (the folder train_zoo_gpu.sh wrote)}
DEST=$(cd "$(dirname "$0")/.." && pwd)/src/dodoco/data/zoo
TMP=$(mktemp -d)
tar xf "$OUT/meta.tar" -C "$TMP"
for f in deepseek_v2 deepseek_moe qwen3_moe nemotron_h qwen3_5_moe; do
  if [ -f "$OUT/$f.safetensors" ] && [ -f "$TMP/$f/config.json" ]; then
    mkdir -p "$DEST/$f"
    install -m 644 "$OUT/$f.safetensors" "$DEST/$f/model.safetensors"
    install -m 644 "$TMP/$f/config.json" "$TMP/$f/README.md" "$TMP/$f/train_log.jsonl" "$DEST/$f/"
    echo "installed $f"
  else
    echo "skipped $f (not in $OUT)"
  fi
done
rm -rf "$TMP"
