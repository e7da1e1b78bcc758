#!/usr/bin/env bash
# Crash stress for fine-tuning jobs: one web process (API only) and worker-only processes (`--role worker`) on one
# SQLite data dir. Runs an uninterrupted reference job, then a job whose worker or training child is killed with
# SIGKILL at a random point KILLS times (default 20, alternating), and checks: the job succeeds, attempts never
# overlapped (the lease log), exactly one ready adapter version, and the final loss equals the reference run's.
#   bash tools/jobs-stress.sh [KILLS] [STEPS]        (build first: dotnet build Peft.Web -c Release)
set -euo pipefail
KILLS=${1:-20}
STEPS=${2:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DLL="$ROOT/Peft.Web/bin/Release/net10.0/Peft.Web.dll"
[ -f "$DLL" ] || { echo "build Peft.Web first (dotnet build Peft.Web -c Release)" >&2; exit 2; }
DATA=$(mktemp -d /tmp/peft-jobs-stress.XXXXXX)
EMPTY=$(mktemp -d)
PORT=${PORT:-5187}
URL="http://127.0.0.1:$PORT"
KEY="stress-$(date +%s)-$RANDOM"   # Hub:BootstrapApiKey: the admin's key for this run
AUTH=(-H "Authorization: Bearer $KEY")
COMMON=(--Hub:DataDir="$DATA" --Hub:ModelsDir="$ROOT/models" --Hub:CorporaDir="$EMPTY" --Jobs:LeaseTimeout=00:00:15
        --Jobs:HeartbeatInterval=00:00:01 --Jobs:RecoveryInterval=00:00:01 --Jobs:QueuePollInterval=00:00:01 --Jobs:MaxCrashRetries=100)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$EMPTY"; }
trap cleanup EXIT

dotnet "$DLL" --urls "$URL" --Jobs:RunServer=false --Hub:BootstrapApiKey="$KEY" "${COMMON[@]}" > "$DATA/web.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "${AUTH[@]}" "$URL/api/base-models" >/dev/null && break; sleep 0.5; done
head -60 "$ROOT/data/austen.jsonl" > "$DATA/small.jsonl"
curl -sf "${AUTH[@]}" -F name=austen-small -F "file=@$DATA/small.jsonl" "$URL/api/datasets" >/dev/null

submit() {
  curl -sf "${AUTH[@]}" -H 'content-type: application/json' -d "{\"base_model\":\"peft-demo\",\"dataset\":\"austen-small\",\"adapter_name\":\"$1\",
    \"method\":\"lora\",\"r\":4,\"lora_alpha\":8,\"lora_dropout\":0,\"target_modules\":[\"q_proj\",\"v_proj\"],\"max_steps\":$STEPS,
    \"batch_size\":2,\"max_length\":32,\"lr\":0.01,\"save_every\":1,\"seed\":7}" "$URL/api/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
field() { curl -sf "${AUTH[@]}" "$URL/api/jobs/$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
final_loss() { curl -sf "${AUTH[@]}" "$URL/api/jobs/$1/metrics" | python3 -c "import json,sys; t=json.load(sys.stdin)['train']; print([p['loss'] for p in t if p['step']==$STEPS][-1])"; }
start_worker() { dotnet "$DLL" --role worker "${COMMON[@]}" >> "$DATA/worker.log" 2>&1 & WORKER=$!; PIDS+=($WORKER); }
wait_state() { while [ "$(field "$1" state)" != "$2" ]; do [ "$(field "$1" state)" = failed ] && { echo "job $1 failed" >&2; exit 1; }; sleep 0.5; done; }

start_worker
REF=$(submit stress-ref); wait_state "$REF" succeeded
echo "reference job $REF: final loss $(final_loss "$REF")"

JOB=$(submit stress-job)
for i in $(seq "$KILLS"); do
  before=$(field "$JOB" step)
  while [ "$(field "$JOB" state)" != running ] || [ "$(field "$JOB" step)" -le "$before" ]; do
    [ "$(field "$JOB" state)" = succeeded ] && { echo "job finished after $((i-1)) kills; raise STEPS" >&2; exit 1; }
    sleep 0.1
  done
  sleep "0.$((RANDOM % 10))"
  if (( i % 2 )); then
    child=$(pgrep -f "train-child --config $DATA/jobs/$JOB/" | head -1 || true)
    [ -n "$child" ] && kill -9 "$child" && echo "kill $i: training child $child at step $(field "$JOB" step)"
  else
    kill -9 "$WORKER"; echo "kill $i: worker $WORKER at step $(field "$JOB" step)"; start_worker
  fi
done
wait_state "$JOB" succeeded
REF_LOSS=$(final_loss "$REF"); LOSS=$(final_loss "$JOB")
echo "stressed job $JOB: attempts $(field "$JOB" attempt), final loss $LOSS (reference $REF_LOSS)"
python3 - "$DATA/catalog.db" "$JOB" "$REF_LOSS" "$LOSS" <<'PY'
import sqlite3, sys
db, job, ref, loss = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
c = sqlite3.connect(db)
leases = c.execute("select Token, AcquiredAt, coalesce(ReleasedAt, LastHeartbeatAt), Outcome from JobLeases where JobId=? order by Token", (job,)).fetchall()
for prev, cur in zip(leases, leases[1:]):
    assert cur[1] >= prev[2], f"lease {cur[0]} overlaps lease {prev[0]}"
versions = c.execute("select State from AdapterVersions where SourceJobId=?", (job,)).fetchall()
assert versions == [("Ready",)], versions
assert abs(ref - loss) <= 1e-6 * max(1, abs(ref)), (ref, loss)
print(f"OK: {len(leases)} attempts, none overlapping; outcomes {[l[3] for l in leases]}; one ready version; loss equal")
PY
