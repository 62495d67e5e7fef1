#!/usr/bin/env python3
"""Reference fixtures for radfm's LoRA: Hugging Face PEFT adapters on the tiny
models of tools/model_reference.py, and the outputs PEFT gives with them.

    python3 tools/peft_reference.py [--fixtures crates/radfm-model/tests/fixtures]
    python3 tools/peft_reference.py --check-radfm DIR [DIR...]

Needs torch, transformers and peft.

The first form writes fixtures/peft/<model>-<adapter>/ for the ViT, DINOv2
and CLIP fixtures, two adapters each:

    qv   r=4, lora_alpha=8, target_modules query,value, saved with the module
         names of transformers 4.x (attention.attention.query; CLIP's names
         did not change), the naming of most published adapters
    all  r=2, lora_alpha=4, use_rslora, target_modules all-linear, saved as
         PEFT saves it with transformers 5 (attention.q_proj, mlp.fc1); on
         CLIPModel this adapts the text tower and projections as well

PEFT initialises lora_B to zero; here both factors are drawn at random, so
that the adapters change the outputs. transformers 5 cannot load a 4.x-named
adapter, so the qv adapter is made under the transformers 5 names, its
outputs computed, and only then its keys and target_modules renamed: the
same weights under the old names. Each directory holds adapter_config.json,
adapter_model.safetensors, and the vision tower's outputs on the model
fixture's x16.npy with the adapter (last_hidden_state.npy, pooled.npy) and
merged into the weights (merged_pooled.npy).

The second form checks adapters that radfm trained: each DIR holds adapter/
(written by `radfm finetune --method lora`), base.txt (the base model's
fixture name) and radfm_last_hidden_state.npy (radfm's output on the base
fixture's x16.npy, from `radfm model run --lora`). It loads the adapter with
PeftModel.from_pretrained, runs PEFT on the same input, prints the largest
relative difference, and writes peft_last_hidden_state.npy beside it.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import CLIPModel, Dinov2Model, ViTModel

MODELS = {"vit": ViTModel, "dinov2": Dinov2Model, "clip": CLIPModel}


def vision(model, name):
    """The vision tower of a (PEFT-wrapped) model, as radfm runs it."""
    inner = model.get_base_model() if isinstance(model, PeftModel) else model
    return inner.vision_model if name == "clip" else inner


def outputs(model, name, x):
    with torch.no_grad():
        o = vision(model, name)(pixel_values=x)
    return o.last_hidden_state.numpy(), o.pooler_output.numpy()


def legacy(key, name):
    """A transformers 5 module name of ViT / DINOv2 under its 4.x name."""
    if name == "vit":
        key = re.sub(r"(^|\.)layers\.(\d+)\.", r"\1encoder.layer.\2.", key)
    for new, old in [("attention.q_proj", "attention.attention.query"),
                     ("attention.k_proj", "attention.attention.key"),
                     ("attention.v_proj", "attention.attention.value"),
                     ("attention.o_proj", "attention.output.dense")]:
        key = key.replace(new, old)
    if name == "vit":
        key = key.replace("mlp.fc1", "intermediate.dense").replace("mlp.fc2", "output.dense")
    return key


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            if "lora_" in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def make(fixtures, name, kind, seed):
    base_dir = fixtures / name
    x = torch.from_numpy(np.load(base_dir / "x16.npy"))
    model = MODELS[name].from_pretrained(base_dir).eval()
    if kind == "qv":
        targets = ["q_proj", "v_proj"] if name != "clip" else ["q_proj", "v_proj"]
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets)
    else:
        cfg = LoraConfig(r=2, lora_alpha=4, use_rslora=True, target_modules="all-linear")
    pm = get_peft_model(model, cfg)
    randomise(pm, seed)
    pm.eval()
    hidden, pooled = outputs(pm, name, x)
    out = fixtures / "peft" / f"{name}-{kind}"
    out.mkdir(parents=True, exist_ok=True)
    pm.save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)
    merged = pm.merge_and_unload()
    _, merged_pooled = outputs(merged, name, x)
    if kind == "qv" and name != "clip":
        # the same adapter under the transformers 4.x module names
        f = out / "adapter_model.safetensors"
        tensors = load_file(f)
        save_file({legacy(k, name): v.contiguous() for k, v in tensors.items()}, f)
        c = json.loads((out / "adapter_config.json").read_text())
        c["target_modules"] = ["query", "value"]
        (out / "adapter_config.json").write_text(json.dumps(c, indent=2) + "\n")
    c = json.loads((out / "adapter_config.json").read_text())
    c["base_model_name_or_path"] = f"radfm-fixture-{name}"
    (out / "adapter_config.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
    np.save(out / "last_hidden_state.npy", hidden)
    np.save(out / "pooled.npy", pooled)
    np.save(out / "merged_pooled.npy", merged_pooled)
    (out / "reference.json").write_text(json.dumps({
        "base": name, "adapter": kind, "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "keys": sorted(load_file(out / "adapter_model.safetensors"))[:4]}, indent=1) + "\n")
    print(f"{out}: pooled |max| {np.abs(pooled).max():.3f}")


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def check_radfm(fixtures, dirs):
    worst = 0.0
    for d in map(Path, dirs):
        name = (d / "base.txt").read_text().strip()
        base_dir = fixtures / name
        x = torch.from_numpy(np.load(base_dir / "x16.npy"))
        model = MODELS[name].from_pretrained(base_dir).eval()
        pm = PeftModel.from_pretrained(model, d / "adapter").eval()
        n = sum(1 for k, _ in pm.named_modules() if k.endswith("lora_A"))
        hidden, _ = outputs(pm, name, x)
        ours = np.load(d / "radfm_last_hidden_state.npy")
        r = rel(ours, hidden)
        np.save(d / "peft_last_hidden_state.npy", hidden)
        # the adapter must change the output, or the check proves nothing
        base_hidden, _ = outputs(MODELS[name].from_pretrained(base_dir).eval(), name, x)
        moved = rel(hidden, base_hidden)
        print(f"{d}: {n} adapted layers, radfm vs PEFT max relative difference {r:.2e} "
              f"(the adapter moves the output by {moved:.2e})")
        worst = max(worst, r)
        if moved < 1e-3:
            print(f"{d}: the adapter barely changes the output", file=sys.stderr)
            return 1
    print(f"worst {worst:.2e} (target <= 1e-4)")
    return 0 if worst <= 1e-4 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="crates/radfm-model/tests/fixtures")
    ap.add_argument("--check-radfm", nargs="+")
    a = ap.parse_args()
    fixtures = Path(a.fixtures)
    torch.manual_seed(0)
    if a.check_radfm:
        sys.exit(check_radfm(fixtures, a.check_radfm))
    for k, (name, kind) in enumerate([(m, kind) for m in MODELS for kind in ("qv", "all")]):
        make(fixtures, name, kind, 100 + k)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")


if __name__ == "__main__":
    main()
