#!/usr/bin/env bash
# Tries settings on the validation split of a demo target (never the test split) and appends one JSON row per run to
# docs/results-sweep.jsonl, which tools/render-results.py shows at the end of docs/RESULTS.md.
# Spec file: one run per line, "NAME TARGET STEPS ARGS..." (e.g. "lora-qv-5e-3 moby_dick 300 --method lora --lr 5e-3").
# Rerun: CORPORA=/tmp/corpora bash tools/lr-sweep.sh tools/lr-sweep.txt
set -euo pipefail
cd "$(dirname "$0")/.."
corpora=${CORPORA:-/tmp/corpora}
work=${WORK:-$(mktemp -d /tmp/peft-sweep-XXXX)}
dotnet build -c Release Peft.Cli -v q >/dev/null
grep -v '^#' "$1" | while read -r name target steps args; do
  [ -n "$name" ] || continue
  for s in train validation; do grep -h "\"split\":\"$s\"" "$corpora/$target.jsonl" > "$work/$target.$s.jsonl"; done
  # shellcheck disable=SC2086
  dotnet Peft.Cli/bin/Release/net10.0/peft.dll train --model models/peft-demo --data "$work/$target.train.jsonl" \
    --eval-data "$work/$target.validation.jsonl" --format text --block-size 128 --batch-size 8 --max-steps "$steps" \
    --scheduler cosine --warmup 0.1 --eval-every "$steps" --seed 0 $args --out "$work/$name" --json-events > "$work/$name.events.jsonl"
  pct=$(grep -o 'trainable%: [0-9.]*' "$work/$name.events.jsonl" | head -1 | cut -d' ' -f2)
  ppl=$(grep '"type":"done"' "$work/$name.events.jsonl" | grep -o '"eval_perplexity":[0-9.]*' | cut -d: -f2)
  echo "{\"target\":\"$target\",\"name\":\"$name\",\"steps\":$steps,\"args\":\"$args\",\"trainable_pct\":\"$pct\",\"eval_perplexity\":$ppl}" | tee -a docs/results-sweep.jsonl
done
