#!/usr/bin/env python3
"""Probe speed: `radfm probe --C auto` against scikit-learn doing the same sweep, same input.

The input: N embeddings of dimension D (default 20,000 x 384, float32, correlated features of
unequal scale as an encoder's are), 14 observations with prevalences from 2% to 40% that depend
on the features, patient-level train/val/test splits (80/10/10). Both sides fit, for every
observation, an L2 logistic regression at each C of radfm's grid (17 values, 1e-4 to 1e4) on
the train rows, score the val rows by AUROC, keep the best C, and predict the test rows.

scikit-learn runs its lbfgs solver twice: with its defaults (tol=1e-4, max_iter=100: what a
user gets, stopping short of the optimum at large C) and warm-started along the path with
tol=1e-8, max_iter=5000 (fitted to convergence, as radfm is). It uses every core for the
observations (joblib, n_jobs=-1), as radfm does (rayon).

Usage: python bench/probe_sweep.py [--radfm target/release/radfm] [--n 20000] [--d 384]
Prints both times, the ratios, and the largest difference in test probability between radfm
and the converged scikit-learn fit at radfm's chosen C.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

warnings.filterwarnings("ignore")
os.environ["PYTHONWARNINGS"] = "ignore"  # joblib's worker processes too (convergence warnings)
GRID = [1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2, 3.162e-2, 1e-1, 3.162e-1, 1.0, 3.162, 10.0, 31.62,
        100.0, 316.2, 1e3, 3162.0, 1e4]
OBS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
       "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
       "Pleural Other", "Fracture", "Support Devices"]


def make(n, d, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    x = (rng.normal(size=(n, d)) @ mix * np.exp(rng.normal(size=d) * 0.5)).astype(np.float32)
    patients = rng.integers(0, n // 2, size=n)
    split = np.array(["train", "val", "test"])[np.searchsorted([0.8, 0.9], (patients * 0.618034) % 1.0)]
    prev = np.linspace(0.02, 0.4, len(OBS))
    y = np.zeros((n, len(OBS)), dtype=int)
    for k, p in enumerate(prev):
        w = rng.normal(size=d) / np.sqrt(d)
        z = x.astype(np.float64) @ w
        z = (z - z.mean()) / z.std() * 1.5
        b = np.quantile(z + rng.logistic(size=n), 1 - p)
        y[:, k] = (z + rng.logistic(size=n) > b).astype(int)
    return x, patients, split, y


def sklearn_sweep(x, split, y, tol, max_iter, warm):
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    xtr, xva, xte = (x[m].astype(np.float64) for m in (tr, va, te))

    def one(k):
        m = LogisticRegression(C=GRID[0], tol=tol, max_iter=max_iter, warm_start=warm)
        best = (-1.0, None, None)
        for c in GRID:
            m.set_params(C=c)
            m.fit(xtr, y[tr, k])
            auc = roc_auc_score(y[va, k], m.predict_proba(xva)[:, 1])
            if auc > best[0]:
                best = (auc, c, m.predict_proba(xte)[:, 1].copy())
        return best

    return Parallel(n_jobs=-1)(delayed(one)(k) for k in range(len(OBS)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--skip-converged", action="store_true",
                    help="only scikit-learn's defaults (the converged sweep takes about 20 minutes on 2 cores)")
    a = ap.parse_args()
    x, patients, split, y = make(a.n, a.d)
    tmp = tempfile.mkdtemp()
    emb = os.path.join(tmp, "emb")
    os.makedirs(emb)
    np.save(os.path.join(emb, "embeddings.npy"), x)
    with open(os.path.join(emb, "index.jsonl"), "w") as f:
        for i in range(a.n):
            f.write(json.dumps({"id": f"img{i}", "patient_id": f"p{patients[i]}", "split": split[i],
                                "labels": {o: int(y[i, k]) for k, o in enumerate(OBS)},
                                "labeled": True}) + "\n")
    print(f"input: {a.n} x {a.d} float32, {len(OBS)} observations, {len(GRID)} C values, "
          f"cores: {os.cpu_count()}", flush=True)
    t = time.perf_counter()
    subprocess.run([a.radfm, "probe", "--embeddings", emb, "--out", os.path.join(tmp, "run")],
                   check=True, stderr=subprocess.DEVNULL)
    t_radfm = time.perf_counter() - t
    print(f"radfm probe --C auto:                      {t_radfm:.2f} s", flush=True)
    t = time.perf_counter()
    sklearn_sweep(x, split, y, 1e-4, 100, False)
    t_default = time.perf_counter() - t
    print(f"scikit-learn, defaults (tol 1e-4, 100 it): {t_default:.2f} s  ratio {t_default / t_radfm:.2f}x",
          flush=True)
    if a.skip_converged:
        return
    t = time.perf_counter()
    converged = sklearn_sweep(x, split, y, 1e-8, 5000, True)
    t_conv = time.perf_counter() - t
    # agreement at radfm's chosen C, where both chose the same C
    rep = json.load(open(os.path.join(tmp, "run", "probe.json")))
    chosen = {o["observation"]: o.get("C") for o in rep["runs"][0]["observations"]}
    preds = [json.loads(l) for l in open(os.path.join(tmp, "run", "pred.jsonl"))]
    same, worst = 0, 0.0
    for k, o in enumerate(OBS):
        if converged[k][1] == chosen[o]:
            same += 1
            ours = np.array([p["scores"][o] for p in preds])
            worst = max(worst, float(np.abs(ours - converged[k][2]).max()))
    print(f"scikit-learn, converged, warm-started:     {t_conv:.2f} s  ratio {t_conv / t_radfm:.2f}x")
    print(f"same C chosen for {same}/{len(OBS)} observations; largest test-probability difference "
          f"there from converged scikit-learn: {worst:.1e}")


if __name__ == "__main__":
    sys.exit(main())
