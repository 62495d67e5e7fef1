#!/usr/bin/env python3
"""Reference pixel values from transformers' PIL image processors, for radfm's preprocessing.

Grey 8-bit test images (smooth anatomy-like shading, noise, sharp edges, text-like strokes) go
through transformers' ViT, BiT (DINOv2's) and CLIP processors, PIL backend (the `*Pil` classes;
transformers 5 uses torchvision instead when it is installed, and that backend resamples
differently), each with the grey value in all three channels. Sizes are scaled down from the
real checkpoints' (224 px) to keep the fixture small; the steps are the same. Every PIL filter
is also checked alone (resize only, uint8 out).

Writes crates/radfm-data/tests/fixtures/preprocess/: images.npy (uint8, stacked, with
shapes in cases.json), outputs.npy (the processors' float32 pixel values, concatenated),
pil.npy (PIL's uint8 resizes, concatenated), cases.json.

Usage: python tools/preprocess_reference.py
"""
import json
import os

import numpy as np
import PIL
import transformers
from transformers import BitImageProcessorPil, CLIPImageProcessorPil, ViTImageProcessorPil

out_dir = os.path.join(os.path.dirname(__file__), "..", "crates", "radfm-data", "tests",
                       "fixtures", "preprocess")
rng = np.random.default_rng(7)


def image(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 120 + 60 * np.sin(x / w * 3.1) * np.cos(y / h * 2.3) + rng.normal(0, 6, (h, w))
    v[h // 3:h // 3 + 2, :] = 250  # a sharp line
    v[:, w // 2:] -= 40  # a step edge
    for k in range(5):  # strokes
        v[h - 12:h - 4, 4 + 6 * k:6 + 6 * k] = 5
    return np.clip(v, 0, 255).astype(np.uint8)


shapes = [(61, 77), (97, 64), (40, 40)]
images = [image(h, w) for h, w in shapes]
configs = {
    "vit": (ViTImageProcessorPil, dict(do_resize=True, size={"height": 32, "width": 32},
                                       resample=2, do_rescale=True, rescale_factor=1 / 255,
                                       do_normalize=True, image_mean=[0.5, 0.5, 0.5],
                                       image_std=[0.5, 0.5, 0.5])),
    "dinov2": (BitImageProcessorPil, dict(do_resize=True, size={"shortest_edge": 36}, resample=3,
                                          do_center_crop=True,
                                          crop_size={"height": 32, "width": 32},
                                          do_rescale=True, rescale_factor=1 / 255,
                                          do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                                          image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)),
    "clip": (CLIPImageProcessorPil, dict(do_resize=True, size={"shortest_edge": 32}, resample=3,
                                         do_center_crop=True,
                                         crop_size={"height": 32, "width": 32}, do_rescale=True,
                                         rescale_factor=1 / 255, do_normalize=True,
                                         image_mean=[0.48145466, 0.4578275, 0.40821073],
                                         image_std=[0.26862954, 0.26130258, 0.27577711],
                                         do_convert_rgb=True)),
}
cases, outputs = [], []
for name, (cls, cfg) in configs.items():
    proc = cls(**cfg)
    for i, img in enumerate(images):
        rgb = np.repeat(img[:, :, None], 3, axis=2)
        px = proc(images=rgb, return_tensors="np")["pixel_values"][0].astype(np.float32)
        cases.append({"name": name, "image": i, "config": cfg, "shape": list(px.shape),
                      "offset": int(sum(o.size for o in outputs))})
        outputs.append(px.ravel())
# every filter alone, down and up (uint8 out, in pil.npy)
pil = []
for f in [0, 1, 2, 3, 4, 5]:
    for i, img in enumerate(images):
        for (h, w) in [(23, 31), (70, 85)]:
            r = np.asarray(PIL.Image.fromarray(img).resize((w, h), resample=f))
            cases.append({"name": f"pil-{f}", "image": i, "filter": f, "shape": [h, w],
                          "offset": int(sum(o.size for o in pil))})
            pil.append(r.ravel())
os.makedirs(out_dir, exist_ok=True)
np.save(os.path.join(out_dir, "images.npy"), np.concatenate([im.ravel() for im in images]))
np.save(os.path.join(out_dir, "outputs.npy"), np.concatenate(outputs).astype(np.float32))
np.save(os.path.join(out_dir, "pil.npy"), np.concatenate(pil).astype(np.uint8))
with open(os.path.join(out_dir, "cases.json"), "w") as f:
    json.dump({"made_by": f"tools/preprocess_reference.py, transformers {transformers.__version__}, "
                          f"Pillow {PIL.__version__}",
               "images": [list(s) for s in shapes], "cases": cases}, f, indent=1)
