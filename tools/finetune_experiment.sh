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
run ft-lora --model "$W/mae" --method lora --targets q,v --rank 16 --alpha 16 --lr 1e-3
run ft-full --model "$W/mae" --method full --lr 3e-4 --layer-decay 0.75
run ft-scratch --model "$W/random" --method full --lr 3e-4
# the probe of tools/label_efficiency.sh, on the same encoder: its 100% run is the main one
[ -f "$W/mae-probe-weak-eval/metrics.json" ] || "$R" evaluate --pred "$W/mae-probe-weak/pred.jsonl" \
    --truth "$W/ds/truth.jsonl" --out "$W/mae-probe-weak-eval" >/dev/null
python3 - "$W" <<'PY' | tee "$W/ft-table.md"
import json, sys
w = sys.argv[1]
rows = [("MAE encoder, LoRA r=16 on q,v", "ft-lora"), ("MAE encoder, full fine-tuning", "ft-full"),
        ("MAE encoder, linear probe (100% of labels)", "mae-probe-weak"),
        ("same architecture from scratch", "ft-scratch")]
print("| model | trainable parameters | test macro AUROC [95% CI] | selected step (val AUROC) |")
print("|---|---|---|---|")
for name, d in rows:
    m = json.load(open(f"{w}/{d}-eval/metrics.json"))
    a = m["macro"]["auroc"]
    ci = a.get("ci") or [None, None]
    try:
        p = json.load(open(f"{w}/{d}/params.json"))["trainable"]
        cls = json.load(open(f"{w}/{d}/model/classifier.json"))["selected"] or {}
        sel = f"{cls.get('step')} ({cls.get('val_macro_auroc', 0):.3f})"
    except FileNotFoundError:
        p, sel = "2,702 (14 logistic heads)", "C by 5-fold CV"
    print(f"| {name} | {p if isinstance(p, str) else format(p, ',')} | {a['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {sel} |")
PY
