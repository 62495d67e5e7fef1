#!/usr/bin/env python3
"""radfm against PyTorch on the same ViT, in one run, with the ratio.

    python3 bench/vit_step.py [--radfm target/release/radfm] [--steps 10] [--threads 2]

Training step: image 64, 1 channel, patch 8, dim 192, depth 6, heads 3, MLP
ratio 4, batch 32, AdamW, BCE with logits over 14 outputs (median of --steps
after 2 warmup steps). Inference: ViT-S/16 (dim 384, depth 12, heads 6),
batch 16, 224 px, 3 channels (median of 3 after 1 warmup). Both sides use the
same architecture: pre-norm blocks, exact GELU, learned position embeddings
for the training model and sin-cos (fixed) ones for ViT-S, class-token
pooling with a final LayerNorm. PyTorch runs with --threads intra-op threads;
radfm cuts each batch into data-parallel parts (its `pretrain` default: two
per core, at least 8 images a part), each on its own thread.
"""
import argparse
import json
import math
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x):
        b, n, d = x.shape
        h = self.norm1(x)
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)))
        x = x + self.o(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, size, patch, ch, d, depth, heads, learned_pos=True):
        super().__init__()
        self.patch = patch
        n = (size // patch) ** 2
        self.proj = nn.Linear(ch * patch * patch, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, d), requires_grad=learned_pos)
        self.blocks = nn.ModuleList(Block(d, heads, 4 * d) for _ in range(depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x):
        b, c, h, w = x.shape
        p = self.patch
        t = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        t = torch.cat([self.cls.expand(b, -1, -1), self.proj(t)], 1) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]


def torch_times(steps, warmup):
    torch.manual_seed(0)
    enc = ViT(64, 8, 1, 192, 6, 3)
    head = nn.Linear(192, 14)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    x = torch.randn(32, 1, 64, 64)
    y = (torch.arange(32 * 14).reshape(32, 14) % 3 == 0).float()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(head(enc(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    train = sorted(times)[len(times) // 2]
    vit_s = ViT(224, 16, 3, 384, 12, 6, learned_pos=False).eval()
    x = torch.randn(16, 3, 224, 224)
    inf = []
    with torch.inference_mode():
        for i in range(4):
            t0 = time.perf_counter()
            vit_s(x)
            if i:
                inf.append(time.perf_counter() - t0)
    return train, sorted(inf)[len(inf) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = subprocess.run([a.radfm, "bench", "vit", "--steps", str(a.steps)], check=True,
                         capture_output=True, text=True).stdout
    ours = json.loads(out.strip().splitlines()[-1])
    t_train, t_inf = torch_times(a.steps, 2)
    print(f"torch {torch.__version__}, {a.threads} threads; radfm data-parallel parts: "
          f"{ours['parts']} (train), {ours['infer_parts']} (inference)")
    print(f"train step (ViT dim 192 depth 6, batch 32, 64 px): radfm {ours['train_step_s']*1e3:.1f} ms, "
          f"PyTorch {t_train*1e3:.1f} ms, ratio {ours['train_step_s']/t_train:.2f}x")
    print(f"inference (ViT-S/16, batch 16, 224 px):            radfm {ours['infer_s']*1e3:.1f} ms, "
          f"PyTorch {t_inf*1e3:.1f} ms, ratio {ours['infer_s']/t_inf:.2f}x")


if __name__ == "__main__":
    main()
