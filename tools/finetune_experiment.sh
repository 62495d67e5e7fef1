#!/usr/bin/env bash
# Fine-tuning against the frozen probe, all from the same radfm MAE encoder, and the
# same architecture trained from scratch, on the same (weak) labels; every model
# evaluated by `radfm evaluate` against the synthetic truth, with patient-bootstrap CIs.
#
#   bash tools/finetune_experiment.sh W [RADFM]
#
# W is the directory of tools/label_efficiency.sh (it holds ds/, mae/, random/ and
# mae-probe-weak/): a 1,200-patient synthetic archive on the NIH cohort, ingested and
# split by patient, the MAE encoder (d 192, 6 blocks, 64 px, patch 8, 1,500 steps) and
# a random initialisation of the same architecture. Writes W/ft-{full,lora,scratch}/
# (finetune runs) and W/ft-*-eval/ (evaluate reports), and W/ft-table.md.
set -euo pipefail
W=${1:?usage: finetune_experiment.sh W [RADFM]}
R=${2:-target/release/radfm}
epochs=10
common=(--data "$W/ds" --epochs $epochs --batch 32 --checkpoint-every 73 --augment standard
        --seed 0 --quiet)
run() { # name, then finetune's flags
    local name=$1; shift
    if [ ! -f "$W/$name/pred.jsonl" ]; then
        local resume=(); [ -f "$W/$name/config.json" ] && resume=(--resume)
        /usr/bin/time -f "$name: %e s, %M KB peak" "$R" finetune --out "$W/$name" "${common[@]}" "$@" "${resume[@]}"
    fi
    [ -f "$W/$name-eval/metrics.json" ] || "$R" evaluate --pred "$W/$name/pred.jsonl" \
        --truth "$W/ds/truth.jsonl" --out "$W/$name-eval" >/dev/null
}
run ft-lora --model "$W/mae" --method lora --targets q,v --rank 16 --alpha 16 --lr 1e-3 --recompute 0
run ft-full --model "$W/mae" --method full --lr 3e-4 --layer-decay 0.75
run ft-scratch --model "$W/random" --method full --lr 3e-4
# the probe of tools/label_efficiency.sh on the same encoder (PROBE=its directory name): its
# 100% run is the main one of its evaluation
PROBE=${PROBE:-mae-probe-weak}
[ -f "$W/$PROBE-eval/metrics.json" ] || "$R" evaluate --pred "$W/$PROBE/pred.jsonl" \
    --truth "$W/ds/truth.jsonl" --out "$W/$PROBE-eval" >/dev/null
python3 - "$W" "$PROBE" <<'PY' | tee "$W/ft-table.md"
import json, sys
w, probe = sys.argv[1], sys.argv[2]
rows = [("LoRA r=16 on q,v (MAE encoder)", "ft-lora"), ("full fine-tuning (MAE encoder)", "ft-full"),
        ("linear probe, 100% (MAE encoder)", probe), ("same architecture from scratch", "ft-scratch")]
ms = {d: json.load(open(f"{w}/{d}-eval/metrics.json")) for _, d in rows}
print("| model | trainable parameters | selected step (val macro AUROC, weak labels) | test macro AUROC |")
print("|---|---|---|---|")
for name, d in rows:
    try:
        p = format(json.load(open(f"{w}/{d}/params.json"))["trainable"], ",")
        sel = json.load(open(f"{w}/{d}/model/classifier.json"))["selected"] or {}
        sel = f"{sel.get('step')} ({sel.get('val_macro_auroc', float('nan')):.3f})"
    except FileNotFoundError:
        p, sel = "2,702 (14 logistic heads)", "C by cross-validation"
    print(f"| {name} | {p} | {sel} | {ms[d]['macro']['auroc']:.3f} |")
print()
print("Test AUROC per observation [patient-bootstrap 95% CI] (`radfm evaluate`):")
print()
print("| observation | " + " | ".join(d for _, d in rows) + " |")
print("|---|" + "---|" * len(rows))
for o in ms["ft-full"]["observations"]:
    cells = []
    for _, d in rows:
        a = ms[d]["observations"].get(o, {}).get("auroc") or {}
        v, ci = a.get("value"), a.get("ci")
        cells.append("-" if v is None else f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}")
    print(f"| {o} | " + " | ".join(cells) + " |")
PY
