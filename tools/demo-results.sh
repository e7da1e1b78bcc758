#!/usr/bin/env bash
# Writes docs/RESULTS.md: what each PEFT method buys on models/peft-demo (language modelling of two held-out styles)
# and on the pretrained MiniLM (SpamAssassin classification). Settings are fixed below (learning rates chosen on the
# validation splits with tools/lr-sweep.sh); scores are on the test splits, which nothing was tuned on.
# Needs the corpora: peft data prepare --out $CORPORA. Runs are appended to docs/results-runs.jsonl, replacing the
# rows of the part that ran, and the page is rendered from that file.
# Rerun: CORPORA=/tmp/corpora PART=all|lm|spam|qlora bash tools/demo-results.sh
set -euo pipefail
cd "$(dirname "$0")/.."
corpora=${CORPORA:-/tmp/corpora}
part=${PART:-all}
lm_steps=${LM_STEPS:-300}
spam_steps=${SPAM_STEPS:-341}
work=${WORK:-$(mktemp -d /tmp/peft-results-XXXX)}
mkdir -p "$work"
dotnet build -c Release Peft.Cli -v q >/dev/null
peft() { dotnet Peft.Cli/bin/Release/net10.0/peft.dll "$@"; }
runs=docs/results-runs.jsonl
touch "$runs"

split() { # split FILE NAME: train/validation/test files of a prepared corpus
  for s in train validation test; do grep -h "\"split\":\"$s\"" "$corpora/$1.jsonl" > "$work/$1.$s.jsonl"; done
}

# train PART TARGET NAME MODEL EVAL_MODEL_ARGS -- TRAIN_ARGS...: one timed run, scored on the test split; one row.
train() {
  local part=$1 target=$2 name=$3 model=$4; shift 4
  local out="$work/$target-$name"
  /usr/bin/time -f '%M' -o "$out.rss" dotnet Peft.Cli/bin/Release/net10.0/peft.dll train --model "$model" \
    --data "$work/$target.train.jsonl" --eval-data "$work/$target.validation.jsonl" --seed 0 --json-events --out "$out" "$@" \
    > "$out.events.jsonl"
  local done_event file summary test
  done_event=$(grep '"type":"done"' "$out.events.jsonl")
  # "trainable params: N || all params: M || trainable%: P; ..." from the start event (PEFT's count)
  summary=$(grep -o '"message":"trainable params[^";]*' "$out.events.jsonl" | head -1 | cut -d'"' -f4)
  if [ -f "$out/adapter_config.json" ]; then
    file="$out/adapter_model.safetensors"
    test=$(peft eval "$model" --adapter "$out" --data "$work/$target.test.jsonl" $EVAL_ARGS)
  else
    file="$out/model.safetensors"
    test=$(peft eval "$out" --data "$work/$target.test.jsonl" $EVAL_ARGS)
  fi
  echo "{\"part\":\"$part\",\"target\":\"$target\",\"method\":\"$name\",\"args\":\"$*\",\"done\":$done_event,\"test\":$test,\"summary\":\"$summary\",\"file_bytes\":$(stat -c %s "$file"),\"peak_rss_kb\":$(cat "$out.rss")}" >> "$work/rows.jsonl"
}

: > "$work/rows.jsonl"
if [ "$part" = all ] || [ "$part" = lm ]; then
  model=models/peft-demo
  EVAL_ARGS="--block-size 128"
  common=(--format text --block-size 128 --batch-size 8 --max-steps "$lm_steps" --scheduler cosine --warmup 0.1 --eval-every "$lm_steps")
  for target in moby_dick sotu_post1945; do
    split "$target"
    echo "{\"part\":\"lm\",\"target\":\"$target\",\"method\":\"base\",\"validation\":$(peft eval $model --data "$work/$target.validation.jsonl" $EVAL_ARGS),\"test\":$(peft eval $model --data "$work/$target.test.jsonl" $EVAL_ARGS)}" >> "$work/rows.jsonl"
    # PEFT's default Llama targets, and the targets the validation sweep chose under the 2 % file budget.
    train lm "$target" lora-qv $model "${common[@]}" --method lora --r 8 --lora-alpha 16 --lr 1e-2
    train lm "$target" lora $model "${common[@]}" --method lora --r 4 --lora-alpha 8 --lr 2e-2 --target-modules lm_head,down_proj
    train lm "$target" dora $model "${common[@]}" --method dora --r 4 --lora-alpha 8 --lr 2e-2 --target-modules lm_head,down_proj
    train lm "$target" ia3 $model "${common[@]}" --method ia3 --lr 1e-2
    train lm "$target" prefix $model "${common[@]}" --method prefix --num-virtual-tokens 20 --lr 1e-2
    train lm "$target" adalora $model "${common[@]}" --method adalora --init-r 6 --target-r 4 --lora-alpha 8 --lr 2e-2 --target-modules lm_head,down_proj
    train lm "$target" full $model "${common[@]}" --method full --lr 1e-3
  done
  model_bytes=$(stat -c %s $model/model.safetensors)
  echo "{\"part\":\"lm\",\"model_bytes\":$model_bytes,\"steps\":$lm_steps}" >> "$work/rows.jsonl"
fi
if [ "$part" = all ] || [ "$part" = spam ]; then
  peft import minilm --out "$work/minilm" > /dev/null
  model="$work/minilm"
  EVAL_ARGS="--block-size 128 --batch-size 32"
  split spam_assassin
  common=(--task seq-cls --format classification --max-length 128 --batch-size 16 --eval-batch-size 32 --max-steps "$spam_steps"
          --scheduler linear --warmup 0.1 --eval-every "$spam_steps")
  train spam spam_assassin head "$model" "${common[@]}" --method head --lr 5e-2
  train spam spam_assassin lora "$model" "${common[@]}" --method lora --r 8 --lora-alpha 16 --lr 1e-3
  train spam spam_assassin full "$model" "${common[@]}" --method full --lr 5e-5
  echo "{\"part\":\"spam\",\"model_bytes\":$(stat -c %s "$model/model.safetensors"),\"steps\":$spam_steps}" >> "$work/rows.jsonl"
fi
if [ "$part" = all ] || [ "$part" = qlora ]; then
  # QLoRA against bf16 LoRA on the same data and settings: the frozen base in bfloat16, or NF4 + double quantisation
  # with bfloat16 matmuls (QLoRA's recipe); adapters float32 in both. Scored by validation loss during training.
  model=models/peft-demo
  EVAL_ARGS="--block-size 128"
  common=(--format text --block-size 128 --batch-size 8 --max-steps "$lm_steps" --scheduler cosine --warmup 0.1 --eval-every "$lm_steps")
  target=moby_dick
  split "$target"
  echo "{\"part\":\"qlora\",\"target\":\"$target\",\"method\":\"base\",\"validation\":$(peft eval $model --data "$work/$target.validation.jsonl" $EVAL_ARGS)}" >> "$work/rows.jsonl"
  # PEFT's default targets (q_proj, v_proj): the adapted layers themselves are quantised. Add
  # "lora|--r 4 --lora-alpha 8 --lr 2e-2 --target-modules lm_head,down_proj" to QLORA_SPECS for the head + MLP variant.
  IFS=';' read -r -a specs <<< "${QLORA_SPECS:-lora-qv|--r 8 --lora-alpha 16 --lr 1e-2}"
  for spec in "${specs[@]}"; do
    name=${spec%%|*}; read -r -a knobs <<< "${spec#*|}"
    train qlora "$target" "$name-bf16" $model "${common[@]}" --method lora "${knobs[@]}" --bf16
    train qlora "$target" "$name-nf4dq" $model "${common[@]}" --method lora "${knobs[@]}" --bf16 --quantize nf4 --double-quant
  done
  echo "{\"part\":\"qlora\",\"model_bytes\":$(stat -c %s $model/model.safetensors),\"steps\":$lm_steps}" >> "$work/rows.jsonl"
fi
# Keep the other part's rows; replace the rows of the parts that ran.
ran=$(python3 -c "import json,sys; print(' '.join(sorted({json.loads(l)['part'] for l in open(sys.argv[1])})))" "$work/rows.jsonl")
python3 - "$runs" "$work/rows.jsonl" $ran <<'PY'
import json, sys
path, new, ran = sys.argv[1], sys.argv[2], set(sys.argv[3:])
kept = [l for l in open(path) if l.strip() and json.loads(l)["part"] not in ran]
with open(path + ".tmp", "w") as f: f.writelines(kept + [l for l in open(new) if l.strip()])
import os; os.replace(path + ".tmp", path)
PY
python3 tools/render-results.py "$runs" > docs/RESULTS.md
echo "wrote docs/RESULTS.md (runs in $work)"
