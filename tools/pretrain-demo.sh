#!/usr/bin/env bash
# Pretrains models/peft-demo from scratch with the project's own trainer (full fine-tuning of a random init) on the
# committed corpora: Austen's novels + State of the Union addresses before 1900 (train splits only). Moby-Dick and the
# post-1945 addresses stay out: they are the fine-tuning targets. Rerun: bash tools/pretrain-demo.sh [MAX_STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-800}
work=${WORK:-$(mktemp -d /tmp/peft-demo-XXXX)}
mkdir -p "$work"
dotnet build -c Release Peft.Cli -v q >/dev/null
peft() { dotnet Peft.Cli/bin/Release/net10.0/peft.dll "$@"; }

grep -h '"split":"train"' data/austen.jsonl data/sotu_pre1900.jsonl > "$work/train.jsonl"
grep -h '"split":"validation"' data/austen.jsonl data/sotu_pre1900.jsonl > "$work/validation.jsonl"

peft model init --config tools/peft-demo.config.json --tokenizer models/peft-demo --seed 0 --out "$work/init" --force
peft train --model "$work/init" --method full --data "$work/train.jsonl" --eval-data "$work/validation.jsonl" \
  --format text --block-size 256 --batch-size 16 --max-steps "$steps" --lr 1e-3 --scheduler cosine --warmup 0.05 \
  --weight-decay 0.1 --max-grad-norm 1 --eval-every 200 --save-every 200 --seed 0 --out "$work/run" --json-events \
  | tee "$work/train-events.jsonl"
# The trainer's final output folder holds config.json + model.safetensors (float32); ship bf16 with the tokenizer.
cp models/peft-demo/tokenizer.json models/peft-demo/tokenizer_config.json models/peft-demo/special_tokens_map.json "$work/run/"
cp "$work/init/generation_config.json" "$work/run/"
peft model convert "$work/run" --dtype bfloat16 --out "$work/final" --force
cp "$work/final/"* models/peft-demo/
cp "$work/train-events.jsonl" models/peft-demo/training_log.jsonl
echo "done: models/peft-demo ($(du -sh models/peft-demo | cut -f1)); events in models/peft-demo/training_log.jsonl"
