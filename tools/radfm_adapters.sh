#!/usr/bin/env bash
# Adapters that radfm trained, for the PEFT check in the other direction.
#
#   bash tools/radfm_adapters.sh   (RADFM=path/to/radfm, PYTHON=python with torch, transformers, peft)
#
# Fine-tunes LoRA adapters with `radfm finetune --method lora` on the tiny
# model fixtures (ViT all-linear, DINOv2 q,v, CLIP vision all-linear) over a
# small synthetic dataset, and writes for each under
# crates/radfm-model/tests/fixtures/peft/radfm-<model>/:
#   adapter/                       the adapter as radfm writes it
#   base.txt                       the fixture it was trained on
#   radfm_last_hidden_state.npy    `radfm model run --lora` on the fixture's x16.npy
# then runs tools/peft_reference.py --check-radfm, which loads each adapter
# with PeftModel.from_pretrained, compares PEFT's output with radfm's and
# writes peft_last_hidden_state.npy (the reference the Rust test checks).
set -euo pipefail
R=${RADFM:-target/release/radfm}
F=crates/radfm-model/tests/fixtures
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$R" synth --out "$W/arch" --patients 40 --seed 5 --size 64 --burned-in 0 --quiet
"$R" ingest "$W/arch/dicom" --reports "$W/arch/reports.jsonl" --truth "$W/arch/truth.jsonl" \
    --out "$W/ds" --size 32 --quiet
"$R" split "$W/ds" --train 0.6 --val 0.2 --test 0.2
for spec in "vit all-linear 1" "dinov2 q,v 3" "clip all-linear 3"; do
    read -r name targets channels <<<"$spec"
    base="$W/base-$name"
    mkdir -p "$base"
    cp "$F/$name/config.json" "$F/$name/model.safetensors" "$base/"
    if [ "$channels" = 1 ]; then mean="[0.5]"; std="[0.25]"; else mean="[0.5, 0.5, 0.5]"; std="[0.25, 0.25, 0.25]"; fi
    cat >"$base/preprocessor_config.json" <<JSON
{"do_resize": true, "size": {"height": 16, "width": 16}, "resample": 2, "do_rescale": true,
 "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": $mean, "image_std": $std}
JSON
    "$R" finetune --model "$base" --data "$W/ds" --out "$W/run-$name" --method lora \
        --targets "$targets" --rank 4 --alpha 8 --steps 40 --lr 0.02 --checkpoint-every 40 \
        --batch 16 --labels "$W/ds/truth.jsonl" --quiet
    out="$F/peft/radfm-$name"
    rm -rf "$out"
    mkdir -p "$out"
    cp -r "$W/run-$name/model/adapter" "$out/adapter"
    echo "$name" >"$out/base.txt"
    "$R" model run --model "$F/$name" --lora "$out/adapter" --input "$F/$name/x16.npy" \
        --out "$out/radfm_last_hidden_state.npy" --output last_hidden_state
done
"${PYTHON:-python3}" tools/peft_reference.py --check-radfm "$F"/peft/radfm-*
