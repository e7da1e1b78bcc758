#!/usr/bin/env bash
# Tries settings on the validation split of a demo target (never the test split) and appends one JSON row per run to
# docs/results-sweep.jsonl, which tools/render-results.py shows at the end of docs/RESULTS.md.
# Spec file: one run per line, "NAME TARGET STEPS ARGS..." (e.g. "lora-qv-5e-3 moby_dick 300 --method lora --lr 5e-3").
# Targets moby_dick and sotu_post1945 train models/peft-demo; spam_assassin trains the imported MiniLM as a classifier.
# Rerun: CORPORA=/tmp/corpora bash tools/lr-sweep.sh tools/lr-sweep.txt
set -euo pipefail
cd "$(dirname "$0")/.."
corpora=${CORPORA:-/tmp/corpora}
work=${WORK:-$(mktemp -d /tmp/peft-sweep-XXXX)}
dotnet build -c Release Peft.Cli -v q >/dev/null
peft() { dotnet Peft.Cli/bin/Release/net10.0/peft.dll "$@"; }
grep -v '^#' "$1" | while read -r name target steps args; do
  [ -n "$name" ] || continue
  for s in train validation; do grep -h "\"split\":\"$s\"" "$corpora/$target.jsonl" > "$work/$target.$s.jsonl"; done
  if [ "$target" = spam_assassin ]; then
    [ -d "$work/minilm" ] || peft import minilm --out "$work/minilm" > /dev/null
    model="$work/minilm"
    fixed="--task seq-cls --format classification --max-length 128 --batch-size 16 --eval-batch-size 32 --scheduler linear --warmup 0.1"
  else
    model=models/peft-demo
    fixed="--format text --block-size 128 --batch-size 8 --scheduler cosine --warmup 0.1"
  fi
  # shellcheck disable=SC2086
  peft train --model "$model" --data "$work/$target.train.jsonl" --eval-data "$work/$target.validation.jsonl" $fixed \
    --max-steps "$steps" --eval-every "$steps" --seed 0 $args --out "$work/$name" --json-events < /dev/null > "$work/$name.events.jsonl"
  pct=$(grep -o 'trainable%: [0-9.]*' "$work/$name.events.jsonl" | head -1 | cut -d' ' -f2)
  done_event=$(grep '"type":"done"' "$work/$name.events.jsonl")
  echo "{\"target\":\"$target\",\"name\":\"$name\",\"steps\":$steps,\"args\":\"$args\",\"trainable_pct\":\"$pct\",\"done\":$done_event}" | tee -a docs/results-sweep.jsonl
done
