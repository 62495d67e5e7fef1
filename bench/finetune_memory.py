#!/usr/bin/env python3
"""Fine-tuning memory and speed: radfm full and LoRA against PyTorch and PEFT, in one run.

    python3 bench/finetune_memory.py [--radfm target/release/radfm] [--steps 3] [--warmup 1]
                                     [--threads 2] [--batch 32] [--image-size 224]

ViT-S/16 (dim 384, depth 12, heads 6, MLP 1536), one channel, 224 px, batch 32,
a 14-output linear head on the class token, BCE with logits, AdamW (lr 1e-4,
weight decay 0.05), gradient clipping at 1. LoRA: rank 16, alpha 16, on the
query and value projections; the head trains too.

- radfm: `radfm bench finetune --method full|lora`, which steps `finetune`'s
  own engine (data-parallel parts, AdamW with decay exclusions) on random
  images. Peak RSS is the process's VmHWM.
- PyTorch: HF ViTModel of the same shape (learned positions, no pooler), and
  for LoRA PEFT's get_peft_model(target_modules q_proj, v_proj). Peak RSS is
  ru_maxrss. --threads intra-op threads (the machine's cores by default).
  Each also with transformers' gradient checkpointing (every layer).
- radfm runs at its defaults (LoRA recomputes the activations of a quarter
  of the blocks, full fine-tuning none), and with --recompute 0 and all.

Each configuration runs in its own process, so each peak is its own. Step
time is the median of --steps after --warmup. Prints one line per run and the
ratios against the targets: radfm LoRA's peak RSS <= 0.6 x radfm full's, and
radfm LoRA's step time <= 2.0 x PEFT's.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def torch_run(method, steps, warmup, threads, batch, size, checkpointing):
    import torch
    import torch.nn as nn
    from transformers import ViTConfig, ViTModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                    intermediate_size=1536, image_size=size, patch_size=16, num_channels=1,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    enc = ViTModel(cfg, add_pooling_layer=False)
    if checkpointing:
        # transformers' gradient checkpointing: every layer's activations recomputed
        enc.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "lora":
        from peft import LoraConfig, get_peft_model
        enc = get_peft_model(enc, LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    head = nn.Linear(384, 14)
    params = [p for p in list(enc.parameters()) + list(head.parameters()) if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    x = torch.randn(batch, 1, size, size)
    y = (torch.arange(batch * 14).reshape(batch, 14) % 3 == 0).float()
    loss_fn = nn.BCEWithLogitsLoss()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        z = head(enc(pixel_values=x).last_hidden_state[:, 0])
        loss = loss_fn(z, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"method": method, "trainable": sum(p.numel() for p in params),
                      "step_s": times[len(times) // 2],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "torch": torch.__version__, "threads": threads,
                      "checkpointing": checkpointing}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--parts-in-flight", type=int, default=0,
                    help="radfm's --parts-in-flight (0: every part at once)")
    ap.add_argument("--torch-child", choices=["full", "lora"])
    ap.add_argument("--torch-checkpointing", action="store_true")
    a = ap.parse_args()
    if a.torch_child:
        torch_run(a.torch_child, a.steps, a.warmup, a.threads, a.batch, a.image_size,
                  a.torch_checkpointing)
        return
    common = ["--steps", str(a.steps), "--warmup", str(a.warmup)]
    shape = ["--batch", str(a.batch), "--image-size", str(a.image_size)]

    def radfm(method, recompute=None):
        extra = [] if recompute is None else ["--recompute", recompute]
        out = subprocess.run([a.radfm, "bench", "finetune", "--method", method,
                              "--parts-in-flight", str(a.parts_in_flight)] + shape + common + extra,
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def torch(method, checkpointing=False):
        extra = ["--torch-checkpointing"] if checkpointing else []
        out = subprocess.run([sys.executable, __file__, "--torch-child", method,
                              "--threads", str(a.threads)] + shape + common + extra,
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    # radfm's defaults: full keeps every activation, LoRA recomputes a quarter of the blocks
    rows = {
        "radfm full": radfm("full"),
        "radfm lora": radfm("lora"),
        "radfm lora, recompute 0": radfm("lora", "0"),
        "radfm full, recompute all": radfm("full", "all"),
        "radfm lora, recompute all": radfm("lora", "all"),
        "pytorch full": torch("full"),
        "peft lora": torch("lora"),
        "pytorch full, ckpt": torch("full", True),
        "peft lora, ckpt": torch("lora", True),
    }
    print(f"ViT-S/16, {a.image_size} px, batch {a.batch}, {a.threads} threads, "
          f"median of {a.steps} steps after {a.warmup}; radfm {rows['radfm full']['parts']} parts, "
          f"{a.parts_in_flight or 'all'} in flight")
    print(f"{'run':<26} {'recompute':>9} {'trainable':>11} {'peak RSS MiB':>13} {'step s':>8}")
    for name, r in rows.items():
        rec = r.get("recompute", "all" if r.get("checkpointing") else 0)
        print(f"{name:<26} {rec:>9} {r['trainable']:>11,} {r['peak_rss_mib']:>13.0f} "
              f"{r['step_s']:>8.2f}")

    def ratio(a_, b_, key):
        return rows[a_][key] / rows[b_][key]

    mem = ratio("radfm lora", "radfm full", "peak_rss_mib")
    speed = ratio("radfm lora", "peft lora", "step_s")
    print(f"defaults: radfm LoRA / radfm full peak RSS: {mem:.3f} (target <= 0.6); "
          f"radfm LoRA / PEFT LoRA step time: {speed:.3f} (target <= 2.0)")
    print(f"without recomputation: LoRA / full peak RSS "
          f"{ratio('radfm lora, recompute 0', 'radfm full', 'peak_rss_mib'):.3f}, "
          f"LoRA / PEFT step {ratio('radfm lora, recompute 0', 'peft lora', 'step_s'):.3f}")
    print(f"every block recomputed (both): LoRA / full peak RSS "
          f"{ratio('radfm lora, recompute all', 'radfm full, recompute all', 'peak_rss_mib'):.3f}, "
          f"LoRA / PEFT (checkpointing) step "
          f"{ratio('radfm lora, recompute all', 'peft lora, ckpt', 'step_s'):.3f}")
    print(f"PyTorch for reference: PEFT LoRA / PyTorch full peak RSS "
          f"{ratio('peft lora', 'pytorch full', 'peak_rss_mib'):.3f}, with checkpointing "
          f"{ratio('peft lora, ckpt', 'pytorch full, ckpt', 'peak_rss_mib'):.3f}; "
          f"radfm full / PyTorch full step {ratio('radfm full', 'pytorch full', 'step_s'):.3f}")
    print(json.dumps({"rows": rows, "lora_over_full_rss": mem, "lora_over_peft_step": speed}))


if __name__ == "__main__":
    main()
