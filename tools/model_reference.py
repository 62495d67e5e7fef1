#!/usr/bin/env python3
"""Reference fixtures for radfm-model's checkpoint import: tiny randomly
initialised Hugging Face models saved with `save_pretrained`, fixed inputs, and
the outputs of the reference implementation on them.

    python3 tools/model_reference.py [--out crates/radfm-model/tests/fixtures]

Needs torch and transformers. Writes one directory per model:

    dinov2/  Dinov2Model with LayerScale; inputs at the native 16 px and at 24 px
             (position-embedding interpolation)
    vit/     ViTModel with its pooler
    clip/    CLIPModel: both towers, the projections and the logits
    bert/    BertModel with padding and token types

Each holds config.json, model.safetensors, the inputs (*.npy) and the
reference outputs (*.npy), plus reference.json with the library versions.
The weights are perturbed after initialisation so that no LayerNorm is the
identity and no LayerScale is a constant: a loader that skipped a tensor
would not pass by luck.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import (BertConfig, BertModel, CLIPConfig, CLIPModel,
                          Dinov2Config, Dinov2Model, ViTConfig, ViTModel)


def perturb(model, scale=0.05):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(scale * torch.randn(p.shape, generator=g))


def save(model, out, name, arrays):
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for k, v in arrays.items():
        np.save(d / f"{k}.npy", np.ascontiguousarray(v))
    (d / "reference.json").write_text(json.dumps(
        {"torch": torch.__version__, "transformers": transformers.__version__,
         "arrays": sorted(arrays)}, indent=1) + "\n")


def image(g, *shape):
    return torch.randn(*shape, generator=g)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/radfm-model/tests/fixtures")
    out = Path(ap.parse_args().out)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    # DINOv2: LayerScale, bicubic position interpolation to a new size
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       mlp_ratio=2, image_size=16, patch_size=4, num_channels=3,
                       layerscale_value=0.5)
    m = Dinov2Model(cfg).eval()
    perturb(m)
    x16, x24 = image(g, 2, 3, 16, 16), image(g, 1, 3, 24, 24)
    with torch.no_grad():
        a, b = m(pixel_values=x16), m(pixel_values=x24)
    save(m, out, "dinov2", {
        "x16": x16.numpy(), "x24": x24.numpy(),
        "x16_last_hidden_state": a.last_hidden_state.numpy(), "x16_pooled": a.pooler_output.numpy(),
        "x24_last_hidden_state": b.last_hidden_state.numpy(), "x24_pooled": b.pooler_output.numpy()})

    # ViT, single channel, with the pooler
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, image_size=16, patch_size=4, num_channels=1)
    m = ViTModel(cfg).eval()
    perturb(m)
    x = image(g, 2, 1, 16, 16)
    with torch.no_grad():
        a = m(pixel_values=x)
    save(m, out, "vit", {"x16": x.numpy(), "x16_last_hidden_state": a.last_hidden_state.numpy(),
                         "x16_pooled": a.pooler_output.numpy()})

    # CLIP: both towers; EOS is the largest id, so argmax and eos-id pooling agree
    cfg = CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=16, eos_token_id=98,
                         bos_token_id=97, pad_token_id=0),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, image_size=16, patch_size=4, num_channels=3),
        projection_dim=16)
    m = CLIPModel(cfg).eval()
    perturb(m)
    ids = torch.tensor([[97, 5, 17, 33, 8, 98, 0, 0], [97, 44, 2, 61, 12, 9, 70, 98]])
    mask = (torch.arange(8)[None, :] <= torch.tensor([[5], [7]])).long()
    x = image(g, 2, 3, 16, 16)
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask, pixel_values=x)
        # the towers on their own: CLIPModel's output carries projected pooler outputs
        vo = m.vision_model(pixel_values=x)
        to = m.text_model(input_ids=ids, attention_mask=mask)
    save(m, out, "clip", {
        "input_ids": ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64),
        "x16": x.numpy(),
        "image_embeds": o.image_embeds.numpy(), "text_embeds": o.text_embeds.numpy(),
        "logits_per_image": o.logits_per_image.numpy(),
        "vision_last_hidden_state": vo.last_hidden_state.numpy(),
        "vision_pooled": vo.pooler_output.numpy(),
        "text_last_hidden_state": to.last_hidden_state.numpy(),
        "text_pooled": to.pooler_output.numpy()})

    # BERT: padding and token types
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32, type_vocab_size=2)
    m = BertModel(cfg).eval()
    perturb(m)
    ids = torch.tensor([[2, 15, 27, 3, 40, 41, 3, 0, 0], [2, 8, 9, 10, 11, 12, 13, 14, 3]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0, 0], [0] * 9])
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask, token_type_ids=types)
    save(m, out, "bert", {
        "input_ids": ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64),
        "token_type_ids": types.numpy().astype(np.int64),
        "last_hidden_state": o.last_hidden_state.numpy(), "pooled": o.pooler_output.numpy()})
    print(f"wrote {out} (torch {torch.__version__}, transformers {transformers.__version__})")


if __name__ == "__main__":
    main()
