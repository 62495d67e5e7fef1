#!/usr/bin/env bash
# Kill a quick demo during MAE pretraining, resume it, and compare its claims with an
# uninterrupted run's (docs/demo.md, "Kill during pretraining, then --resume").
#   tools/demo_kill_resume.sh RADFM_BINARY MINILM_DIR WORKDIR [KILL_AT_STEP]
# Runs two quick demos (about 11 minutes on 2 cores); exits 0 when the claims agree.
set -euo pipefail
bin=$1 minilm=$2 work=$3 at=${4:-150}
full=$work/uninterrupted killed=$work/killed
rm -rf "$full" "$killed"
mkdir -p "$work"
"$bin" demo --quick --out "$full" --text-model "$minilm" > "$work/uninterrupted.log" 2>&1
"$bin" demo --quick --out "$killed" --text-model "$minilm" > "$work/killed.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  n=$(cat "$killed/runs/mae/metrics.jsonl" 2>/dev/null | wc -l)
  if [ "$n" -ge "$at" ]; then kill -9 "$pid"; echo "killed after $n MAE steps"; break; fi
  sleep 0.2
done
wait "$pid" || true
"$bin" demo --quick --out "$killed" --text-model "$minilm" --resume > "$work/resumed.log" 2>&1
python3 - "$full/claims.json" "$killed/claims.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for x in (a, b):
    x.pop("timings")
same = a == b
print("claims.json equal apart from timings:", same)
sys.exit(0 if same else 1)
PY
