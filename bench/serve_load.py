#!/usr/bin/env python3
"""Inference-server load and faults: `radfm serve` against a Python peer (FastAPI + uvicorn
with PyTorch and transformers) on the same Hugging Face checkpoint, the same heads and the same
DICOM files, one after the other in one run.

The checkpoint is a ViT-Tiny/16 (ViTModel: dim 192, 12 layers, 3 heads, 224 px, with ViT's
dense + tanh pooler) with random weights (seed 0) and a ViTImageProcessor (resize to 224
bilinear, rescale 1/255, mean and std 0.5), saved with save_pretrained into a radfm classifier
directory (classifier.json: 14 logistic heads, seeded, on the pooled output; operating points
0.5). The requests are the DICOM files of a synthetic archive (`radfm synth`, 512 px).

The peer does what `radfm serve` does per request: bounds the body (413), checks the content
type (415), reads the file with pydicom, applies the modality LUT and the VOI LUT or window,
inverts MONOCHROME1, scales to 8-bit grey, runs the HF image processor and the model under
no_grad, and answers {"sop_instance_uid", "scores", "model"}; an unreadable file or one
without pixels is 422. Inference runs in uvicorn's thread pool behind a semaphore of
--workers, as radfm's pool; torch uses as many threads as cores.

Measured for each server, with the same client (Python threads, one keep-alive connection each):
  1. load: --clients concurrent clients x --requests requests each: p50, p99, requests/s,
     errors (non-200), and peak RSS of the server process (VmHWM);
  2. faults: every kind of malformed body (empty, random bytes, truncated, a text file, DICOM
     without pixels, wrong content type, over the size limit) mixed with good ones: each must
     be a 4xx, and /healthz must answer 200 afterwards;
  3. SIGTERM with requests in flight: all of them must be answered 200, and the exit code 0.
And the largest difference between the two servers' scores for the same files.

Usage: python bench/serve_load.py [--radfm target/release/radfm] [--clients 8] [--requests 200]
       [--workers 2] [--radfm-batch 1] [--radfm-batch-wait-ms 5] [--out bench-serve.json]
--radfm-batch N runs `radfm serve --batch N` (dynamic batching: up to N waiting requests in one
forward pass per worker; the scores may then differ from a one-image pass in the last bits).
Needs torch, transformers, fastapi, uvicorn, pydicom, numpy, pillow (pip install ...).
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

OBS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
       "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
       "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_model(d):
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    enc = d / "encoder"
    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                    intermediate_size=768, patch_size=16, image_size=224, num_channels=3)
    ViTModel(cfg).eval().save_pretrained(enc)
    ViTImageProcessor(do_resize=True, size={"height": 224, "width": 224}, resample=2,
                      do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                      image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(enc)
    rng = np.random.default_rng(0)
    heads = {o: {"coef": (rng.standard_normal(192) * 0.3).tolist(),
                 "intercept": float(rng.standard_normal() * 0.5),
                 "operating_point": {"threshold": 0.5, "method": "fixed (benchmark)"}}
             for o in OBS}
    meta = {"format": "radfm-classifier-1", "name": "bench-vit-tiny", "version": "1",
            "encoder": "encoder/", "pooling": "pooled", "observations": heads}
    (d / "classifier.json").write_text(json.dumps(meta))


PEER = r'''
import asyncio, io, json, os, sys
import numpy as np, torch, pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from PIL import Image
from transformers import ViTImageProcessor, ViTModel

MODEL = sys.argv[1]
MAX_BODY = int(sys.argv[2])
WORKERS = int(sys.argv[3])
meta = json.load(open(os.path.join(MODEL, "classifier.json")))
enc = os.path.join(MODEL, "encoder")
model = ViTModel.from_pretrained(enc).eval()
proc = ViTImageProcessor.from_pretrained(enc)
obs = list(meta["observations"])
W = torch.tensor([meta["observations"][o]["coef"] for o in obs], dtype=torch.float64)
B = torch.tensor([meta["observations"][o]["intercept"] for o in obs], dtype=torch.float64)
sem = asyncio.Semaphore(WORKERS)
app = FastAPI()

def display(ds):
    a = apply_modality_lut(ds.pixel_array.astype(np.float64), ds)
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        a = apply_voi_lut(ds.pixel_array, ds, index=0).astype(np.float64) / (2 ** bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        c = float(np.ravel(ds.WindowCenter)[0]); w = float(np.ravel(ds.WindowWidth)[0])
        a = np.clip((a - (c - 0.5)) / max(w - 1, 1) + 0.5, 0, 1)
    else:
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        a = 1 - a
    return a

def score(body):
    ds = pydicom.dcmread(io.BytesIO(body), force=True)
    sop = str(ds.SOPInstanceUID)
    a = display(ds)
    if a.ndim == 3:
        a = a.mean(axis=-1) if a.shape[-1] in (3, 4) else a[0]
    grey = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(grey).convert("RGB")
    x = proc(images=img, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        e = model(pixel_values=x).pooler_output[0].double()
    p = torch.sigmoid(W @ e + B)
    return sop, {o: float(v) for o, v in zip(obs, p)}

@app.get("/healthz")
async def healthz():
    return PlainTextResponse("ok\n")

@app.post("/v1/predict")
async def predict(request: Request):
    ct = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ct != "application/dicom":
        return JSONResponse({"error": "send application/dicom"}, status_code=415)
    n = request.headers.get("content-length")
    if n is not None and int(n) > MAX_BODY:
        return JSONResponse({"error": "too large"}, status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "too large"}, status_code=413)
    async with sem:
        try:
            sop, scores = await asyncio.to_thread(score, bytes(body))
        except Exception as e:
            return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=422)
    return {"sop_instance_uid": sop, "scores": scores,
            "model": {"name": meta.get("name"), "version": meta.get("version"), "sha256": ""}}
'''


def rss_peak_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_healthy(port, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def post(conn, body, ct="application/dicom"):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": ct})
    r = conn.getresponse()
    data = r.read()
    return r.status, data, time.perf_counter() - t0


def load(port, bodies, clients, requests):
    lat, errors = [], []
    lock = threading.Lock()

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        mine, bad = [], []
        for i in range(requests):
            b = bodies[(k * requests + i) % len(bodies)]
            try:
                st, _, dt = post(conn, b)
            except (OSError, http.client.HTTPException) as e:
                bad.append(str(e))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                continue
            mine.append(dt)
            if st != 200:
                bad.append(st)
        with lock:
            lat.extend(mine)
            errors.extend(bad)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(lat)
    return {"requests": clients * requests, "wall_s": wall, "rps": clients * requests / wall,
            "p50_ms": float(np.percentile(lat, 50) * 1000), "p99_ms": float(np.percentile(lat, 99) * 1000),
            "errors": len(errors)}


def batch_sizes(port):
    """{requests in a forward pass: passes}, from radfm's /metrics (empty for the peer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith('radfm_batches_total{size="'):
            size, n = line[len('radfm_batches_total{size="'):].split('"} ')
            out[int(size)] = int(n)
    return out


def post_raw(port, body, ct):
    """One request on a fresh connection; the status even when the server answers (413)
    before reading the whole body and closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        s.sendall(head + body)
    except OSError:
        pass
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return "no answer"


def faults(port, good, no_pixels, max_body):
    rnd = random.Random(0)
    cases = [("empty", b"", "application/dicom"),
             ("random bytes", bytes(rnd.getrandbits(8) for _ in range(20000)), "application/dicom"),
             ("truncated", good[: len(good) // 3], "application/dicom"),
             ("a text file", b"FINDINGS: The lungs are clear.\n" * 20, "application/dicom"),
             ("DICOM without pixels", no_pixels, "application/dicom"),
             ("wrong content type", good, "text/plain"),
             ("over the limit", b"\0" * (max_body + 1), "application/dicom")]
    out = {}
    for rep in range(5):
        for name, body, ct in cases:
            out.setdefault(name, set()).add(post_raw(port, body, ct))
            out.setdefault("good, between them", set()).add(post_raw(port, good, "application/dicom"))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/healthz")
    healthy = c.getresponse().status == 200
    return {k: sorted(map(str, v)) for k, v in out.items()}, healthy


def sigterm(proc, port, bodies, n=8):
    results = []

    def one(b):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            st, _, _ = post(c, b)
            results.append(st)
        except Exception as e:
            results.append(f"error: {e}")

    ts = [threading.Thread(target=one, args=(bodies[i % len(bodies)],)) for i in range(n)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    for t in ts:
        t.join()
    code = proc.wait(timeout=120)
    return {"in_flight": n, "answered_200": sum(1 for r in results if r == 200),
            "others": [r for r in results if r != 200], "exit_code": code}


def no_pixels_file(src):
    import pydicom
    ds = pydicom.dcmread(src)
    del ds.PixelData
    p = Path(tempfile.mkstemp(suffix=".dcm")[1])
    ds.save_as(p)
    return p.read_bytes()


def run_server(name, cmd, port, env, bodies, args, good, nopix):
    print(f"== {name}: {' '.join(map(str, cmd))}", flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(port, proc)
    # warm-up, and one answer per file for the score comparison
    scores = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for b in bodies:
        st, data, _ = post(conn, b)
        if st == 200:
            v = json.loads(data)
            scores[v["sop_instance_uid"]] = v["scores"]
    r = load(port, bodies, args.clients, args.requests)
    r["batch_sizes"] = batch_sizes(port)
    r["peak_rss_mib"] = (rss_peak_kib(proc.pid) or 0) / 1024
    f, healthy = faults(port, good, nopix, args.max_body_mb << 20)
    r["faults"] = f
    r["healthy_after_faults"] = healthy
    r["sigterm"] = sigterm(proc, port, bodies)
    print(json.dumps({k: v for k, v in r.items()}, indent=1), flush=True)
    return r, scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--radfm-batch-wait-ms", type=int, default=5,
                    help="radfm serve --batch-wait-ms (with --radfm-batch > 1)")
    ap.add_argument("--radfm-batch", type=int, default=1,
                    help="radfm serve --batch (dynamic batching; 1 = one image per pass)")
    ap.add_argument("--patients", type=int, default=12)
    ap.add_argument("--max-body-mb", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    radfm = str(Path(args.radfm).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "classifier"
        model.mkdir()
        make_model(model)
        subprocess.run([radfm, "synth", "--out", str(tmp / "arch"), "--patients", str(args.patients),
                        "--size", "512", "--seed", "1", "--quiet"], check=True)
        files = sorted(p for p in (tmp / "arch" / "dicom").rglob("*") if p.is_file())
        bodies = [p.read_bytes() for p in files]
        good, nopix = bodies[0], no_pixels_file(files[0])
        env = dict(os.environ)
        results = {}
        port = free_port()
        results["radfm"], s_radfm = run_server(
            "radfm serve", [radfm, "serve", "--model", str(model), "--listen", f"127.0.0.1:{port}",
                            "--workers", str(args.workers), "--max-body-mb", str(args.max_body_mb),
                            "--batch", str(args.radfm_batch),
                            "--batch-wait-ms", str(args.radfm_batch_wait_ms)],
            port, env, bodies, args, good, nopix)
        port = free_port()
        peer = tmp / "peer.py"
        peer.write_text(PEER)
        results["python"], s_peer = run_server(
            "FastAPI + PyTorch", [sys.executable, "-c",
                                  f"import sys; sys.argv=['peer', {str(model)!r}, '{args.max_body_mb << 20}', '{args.workers}'];"
                                  f"exec(open({str(peer)!r}).read()); import uvicorn; uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')"],
            port, env, bodies, args, good, nopix)
        diffs = [abs(s_radfm[k][o] - s_peer[k][o]) for k in s_radfm if k in s_peer for o in s_radfm[k]]
        results["score_max_abs_difference"] = max(diffs) if diffs else None
        results["files"] = len(bodies)
        r, p = results["radfm"], results["python"]
        print()
        print(f"{len(bodies)} DICOM files, {args.clients} clients x {args.requests} requests, workers {args.workers}, "
              f"radfm --batch {args.radfm_batch} --batch-wait-ms {args.radfm_batch_wait_ms}")
        print(f"{'':22}{'radfm serve':>14}{'FastAPI+torch':>16}{'ratio':>9}")
        for k, better in [("p50_ms", "lower"), ("p99_ms", "lower"), ("rps", "higher"), ("peak_rss_mib", "lower")]:
            ratio = r[k] / p[k] if p[k] else float("nan")
            print(f"{k:22}{r[k]:>14.1f}{p[k]:>16.1f}{ratio:>9.2f}  ({better} is better)")
        print(f"{'errors':22}{r['errors']:>14}{p['errors']:>16}")
        if r["batch_sizes"]:
            print("radfm forward passes by requests in them:",
                  ", ".join(f"{k}: {v}" for k, v in sorted(r["batch_sizes"].items())))
        for name, res in [("radfm", r), ("python", p)]:
            four = all(all(s.startswith("4") for s in v) for k, v in res["faults"].items() if k != "good, between them")
            print(f"{name}: malformed all 4xx: {four}; good ones between: {res['faults']['good, between them']}; "
                  f"healthy after: {res['healthy_after_faults']}; SIGTERM: {res['sigterm']['answered_200']}/"
                  f"{res['sigterm']['in_flight']} in-flight answered 200, exit {res['sigterm']['exit_code']}")
        print(f"largest score difference between the two: {results['score_max_abs_difference']}")
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
