#!/usr/bin/env python3
"""Embedding speed: `radfm embed` against transformers on the same checkpoint and images.

The checkpoint is a DINOv2-S (Dinov2Model: dim 384, 12 layers, 6 heads, patch 14, 518 px
positions interpolated to 224) with random weights and DINOv2's image processor (resize the
shortest edge to 256 bicubic, center crop 224, ImageNet mean and std), saved with
save_pretrained. The images are a synthetic archive ingested at 256 px. Both sides run end to
end from the dataset: read the shards, preprocess, run the encoder, keep the pooled output
(the normed class token). transformers uses torch with as many threads as cores, batches of
32, no_grad; radfm uses its defaults (batch 32).

Usage: python bench/embed_speed.py [--radfm target/release/radfm] [--patients 40] [--reps 1]
Prints images/s of each, the ratio, and the largest difference between the two embeddings.
Needs torch, transformers and pillow (a venv: pip install torch transformers pillow).
"""
import argparse
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np


def checkpoint(d):
    import torch
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                       intermediate_size=1536, patch_size=14, image_size=518, layerscale_value=1.0)
    Dinov2Model(cfg).eval().save_pretrained(d)
    proc = BitImageProcessorPil(
        size={"shortest_edge": 256}, resample=3, do_center_crop=True,
        crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=False)
    proc.save_pretrained(d)
    return proc


def dataset_images(ds):
    """Every image of the dataset in catalog key order, as 8-bit grey (what HF sees)."""
    out = {}
    for shard in sorted((ds / "shards").glob("*.tar")):
        with tarfile.open(shard) as t:
            members = {m.name: m for m in t.getmembers()}
            for name, m in members.items():
                if not name.endswith(".npy"):
                    continue
                key = name[:-4]
                side = json.loads(t.extractfile(members[key + ".json"]).read())
                a = np.load(io.BytesIO(t.extractfile(m).read()))
                scale = side.get("scale") or (1 / 65535 if a.dtype == np.uint16 else 1.0)
                grey = (a[0].astype(np.float32) * np.float32(scale)).mean(axis=-1)
                out[key] = np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8)
    return [out[k] for k in sorted(out)]


def hf_embed(model_dir, ds, proc):
    import torch
    from transformers import Dinov2Model

    torch.set_num_threads(os.cpu_count())
    t0 = time.perf_counter()
    model = Dinov2Model.from_pretrained(model_dir).eval()
    imgs = dataset_images(ds)
    outs = []
    with torch.no_grad():
        for i in range(0, len(imgs), 32):
            batch = [np.repeat(g[:, :, None], 3, axis=2) for g in imgs[i:i + 32]]
            x = proc(images=batch, return_tensors="pt")["pixel_values"]
            outs.append(model(pixel_values=x).pooler_output.numpy())
    return np.concatenate(outs), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--reps", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "dinov2-s"
        proc = checkpoint(model)
        run = lambda *args: subprocess.run([a.radfm, *map(str, args)], check=True,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run("synth", "--out", tmp / "ar", "--patients", a.patients, "--size", 256,
            "--burned-in", 0, "--quiet")
        run("ingest", tmp / "ar" / "dicom", "--out", tmp / "ds", "--size", 256, "--quiet")
        ours, theirs = [], []
        for r in range(a.reps):
            out = tmp / f"emb{r}"
            t0 = time.perf_counter()
            run("embed", "--model", model, "--data", tmp / "ds", "--out", out, "--quiet")
            ours.append(time.perf_counter() - t0)
            ref, t = hf_embed(model, tmp / "ds", proc)
            theirs.append(t)
        emb = np.load(out / "embeddings.npy")
        n = emb.shape[0]
        diff = float(np.abs(emb - ref).max())
        scale = float(np.abs(ref).max())
        to, tt = min(ours), min(theirs)
        print(json.dumps({
            "images": n, "dim": emb.shape[1], "cores": os.cpu_count(),
            "radfm_s": round(to, 2), "radfm_images_per_s": round(n / to, 2),
            "transformers_s": round(tt, 2), "transformers_images_per_s": round(n / tt, 2),
            "speed_ratio_radfm_over_transformers": round(tt / to, 3),
            "max_abs_diff": diff, "max_abs_value": scale,
        }, indent=1))


if __name__ == "__main__":
    main()
