#!/usr/bin/env bash
# Fine-tunes models/peft-demo on the held-out target styles with every method and writes docs/RESULTS.md:
# validation perplexity (base, LoRA r=8, DoRA, IA3, prefix tuning, AdaLoRA, full fine-tuning), trainable %, adapter
# file size vs model size, training time and peak memory. Needs the corpora: peft data prepare --out $CORPORA.
# Rerun: CORPORA=/tmp/corpora STEPS=120 bash tools/demo-results.sh
set -euo pipefail
cd "$(dirname "$0")/.."
corpora=${CORPORA:-/tmp/corpora}
steps=${STEPS:-120}
work=${WORK:-$(mktemp -d /tmp/peft-results-XXXX)}
mkdir -p "$work"
dotnet build -c Release Peft.Cli -v q >/dev/null
peft() { dotnet Peft.Cli/bin/Release/net10.0/peft.dll "$@"; }
model=models/peft-demo
rows="$work/rows.jsonl"
: > "$rows"
for target in moby_dick sotu_post1945; do
  grep -h '"split":"train"' "$corpora/$target.jsonl" > "$work/$target.train.jsonl"
  grep -h '"split":"validation"' "$corpora/$target.jsonl" > "$work/$target.validation.jsonl"
  base=$(peft eval "$model" --data "$work/$target.validation.jsonl" --block-size 128)
  echo "{\"target\":\"$target\",\"method\":\"base\",\"eval\":$base}" >> "$rows"
  for spec in "lora:--method lora --r 8 --lora-alpha 16 --lr 2e-3" "dora:--method dora --r 8 --lora-alpha 16 --lr 2e-3" \
              "ia3:--method ia3 --lr 1e-2" "prefix:--method prefix --num-virtual-tokens 20 --lr 1e-2" \
              "adalora:--method adalora --init-r 12 --target-r 8 --lora-alpha 16 --lr 2e-3" "full:--method full --lr 5e-4"; do
    name=${spec%%:*}; args=${spec#*:}
    out="$work/$target-$name"
    # shellcheck disable=SC2086
    /usr/bin/time -f '%M' -o "$out.rss" dotnet Peft.Cli/bin/Release/net10.0/peft.dll train --model "$model" \
      --data "$work/$target.train.jsonl" --eval-data "$work/$target.validation.jsonl" --format text --block-size 128 \
      --batch-size 8 --max-steps "$steps" --scheduler cosine --warmup 0.1 --eval-every "$steps" --seed 0 $args \
      --out "$out" --json-events > "$out.events.jsonl"
    done_event=$(grep '"type":"done"' "$out.events.jsonl")
    if [ "$name" = full ]; then summary='trainable params: 100%'; else
      summary=$(peft params "$model" --adapter-config "$out/adapter_config.json" | grep 'trainable params'); fi
    file="$out/adapter_model.safetensors"; [ "$name" = full ] && file="$out/model.safetensors"
    echo "{\"target\":\"$target\",\"method\":\"$name\",\"done\":$done_event,\"summary\":\"$summary\",\"file_bytes\":$(stat -c %s "$file"),\"peak_rss_kb\":$(cat "$out.rss")}" >> "$rows"
  done
done
python3 tools/render-results.py "$rows" "$(stat -c %s $model/model.safetensors)" "$steps" > docs/RESULTS.md
echo "wrote docs/RESULTS.md (runs in $work)"
