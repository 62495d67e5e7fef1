#!/usr/bin/env python3
"""Zero-shot and retrieval speed: radfm against transformers and NumPy, in one run.

    python3 bench/zeroshot_speed.py [--radfm target/release/radfm] [--images 64]
                                    [--rows 100000] [--dim 512] [--queries 2000] [--threads 2]

1. Zero-shot: a HF CLIPModel of ViT-B/32's shape (224 px, text 12 x 512, projection
   512, random weights) with CLIP's 49,408-token BPE tokenizer, saved by
   save_pretrained. radfm: `radfm zeroshot --model DIR --input X.npy` with the shipped
   chexzero prompts (28 prompts, 14 observations). transformers: the same rule on
   the same X (get_text_features on the prompts, get_image_features on the images,
   the paired softmax), in batches of 32, after loading the model. Both timed end
   to end, loading included; images/s = images / seconds. The probabilities of the
   two are compared (max |difference|).
2. Retrieval: `radfm bench retrieval` (retrieve's exact search) against NumPy
   (float32 matmul in blocks of 256 queries, argpartition + sort) on the same
   random unit vectors: queries/s for top 10 over --rows embeddings.

Prints one JSON line per measurement and the ratios radfm / peer.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
    from zeroshot_reference import clip_tokenizer

    torch.set_num_threads(a.threads)
    root = Path(__file__).resolve().parent.parent
    prompts = json.loads((root / "prompts" / "chexzero.json").read_text())
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model_dir = d / "clip-b32"
        torch.manual_seed(0)
        m = CLIPModel(CLIPConfig(projection_dim=512)).eval()
        m.save_pretrained(model_dir)
        tok = clip_tokenizer()
        tok.save_pretrained(model_dir)
        CLIPImageProcessor().save_pretrained(model_dir)
        del m
        x = np.random.default_rng(0).standard_normal((a.images, 3, 224, 224), dtype=np.float32)
        np.save(d / "x.npy", x)

        # radfm
        t0 = time.perf_counter()
        subprocess.run([a.radfm, "zeroshot", "--model", str(model_dir), "--input", str(d / "x.npy"),
                        "--out", str(d / "pred.jsonl"), "--quiet"], check=True)
        radfm_s = time.perf_counter() - t0
        ours = [json.loads(l) for l in (d / "pred.jsonl").read_text().splitlines()]

        # transformers, the same rule
        t0 = time.perf_counter()
        m = CLIPModel.from_pretrained(model_dir).eval()
        tk = type(tok).from_pretrained(model_dir)

        def feats(out):
            return out.pooler_output if hasattr(out, "pooler_output") else out

        with torch.no_grad():
            names = sorted(prompts["observations"])
            cls = {}
            for n in names:
                for side in ("positive", "negative"):
                    texts = [t.replace("{}", p, 1) for t in prompts["templates"]
                             for p in prompts["observations"][n][side]]
                    e = tk(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
                    f = feats(m.get_text_features(**e))
                    f = f / f.norm(dim=-1, keepdim=True)
                    c = f.mean(0)
                    cls[n, side] = c / c.norm()
            xt = torch.from_numpy(x)
            imgs = []
            for i in range(0, len(xt), 32):
                f = feats(m.get_image_features(pixel_values=xt[i:i + 32]))
                imgs.append(f / f.norm(dim=-1, keepdim=True))
            img = torch.cat(imgs)
            probs = {n: torch.sigmoid(img @ cls[n, "positive"] - img @ cls[n, "negative"]) for n in names}
        torch_s = time.perf_counter() - t0
        diff = max(abs(ours[i]["scores"][n] - float(probs[n][i])) for i in range(a.images) for n in names)
        zs = {"bench": "zeroshot", "model": "CLIPModel ViT-B/32 shape, random weights", "images": a.images,
              "radfm_s": radfm_s, "transformers_s": torch_s,
              "radfm_images_per_s": a.images / radfm_s, "transformers_images_per_s": a.images / torch_s,
              "ratio_images_per_s": (a.images / radfm_s) / (a.images / torch_s),
              "max_abs_prob_diff": diff, "threads": a.threads}
        print(json.dumps(zs))

        # retrieval on the same unit vectors
        rng = np.random.default_rng(1)
        e = rng.standard_normal((a.rows, a.dim), dtype=np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        q = rng.standard_normal((a.queries, a.dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        np.save(d / "e.npy", e)
        np.save(d / "q.npy", q)
        r = subprocess.run([a.radfm, "bench", "retrieval", "--embeddings", str(d / "e.npy"),
                            "--queries", str(d / "q.npy"), "--k", "10"],
                           check=True, capture_output=True, text=True)
        ours = json.loads(r.stdout)
        t0 = time.perf_counter()
        first = []
        for i in range(0, a.queries, 256):
            s = q[i:i + 256] @ e.T
            top = np.argpartition(-s, 10, axis=1)[:, :10]
            order = np.take_along_axis(s, top, axis=1).argsort(axis=1)[:, ::-1]
            top = np.take_along_axis(top, order, axis=1)
            if not first:
                first = top[:5].tolist()
        np_s = time.perf_counter() - t0
        rt = {"bench": "retrieval", "rows": a.rows, "dim": a.dim, "queries": a.queries, "k": 10,
              "radfm_queries_per_s": ours["queries_per_s"], "numpy_queries_per_s": a.queries / np_s,
              "ratio_queries_per_s": ours["queries_per_s"] / (a.queries / np_s),
              "same_top10": ours["first"] == first}
        print(json.dumps(rt))


if __name__ == "__main__":
    main()
