#!/usr/bin/env python3
"""Benchmark `radfm evaluate` against a numpy + scikit-learn patient-level
bootstrap on the same data: N images x 14 observations x B resamples.

    python3 bench/evaluate_speed.py [--images 100000] [--resamples 1000] [--peer-resamples 10]

The peer computes the same metrics per resample (roc_auc_score,
average_precision_score, f1_score at the threshold, brier_score_loss) with
patient resampling in numpy; it runs `--peer-resamples` resamples and its
time is scaled linearly to B. Prints both times and the ratio.
"""
import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

OBS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
       "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
       "Fracture", "Support Devices"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--peer-resamples", type=int, default=10)
    ap.add_argument("--radfm", default=str(Path(__file__).resolve().parent.parent / "target/release/radfm"))
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    n = a.images
    pid = np.arange(n) // 2
    y = (rng.random((n, len(OBS))) < 0.1 + 0.02 * np.arange(len(OBS))).astype(int)
    s = 1 / (1 + np.exp(-(1.5 * y - 1 + rng.normal(size=y.shape))))
    s = np.round(s, 4)
    d = Path(tempfile.mkdtemp())
    with open(d / "truth.jsonl", "w") as t, open(d / "pred.jsonl", "w") as p:
        for i in range(n):
            t.write(json.dumps({"id": f"i{i}", "patient_id": f"p{pid[i]}", "labels": dict(zip(OBS, y[i].tolist()))}) + "\n")
            p.write(json.dumps({"id": f"i{i}", "scores": dict(zip(OBS, s[i].tolist()))}) + "\n")
    t0 = time.time()
    subprocess.run([a.radfm, "evaluate", "--pred", str(d / "pred.jsonl"), "--truth", str(d / "truth.jsonl"),
                    "--out", str(d / "out"), "--bootstrap", str(a.resamples)], check=True, capture_output=True)
    ours = time.time() - t0
    # the peer: patient bootstrap with scikit-learn metrics
    patients = np.unique(pid)
    starts = np.searchsorted(pid, patients)
    counts = np.bincount(pid)
    t0 = time.time()
    for r in range(a.peer_resamples):
        pick = rng.integers(0, len(patients), len(patients))
        idx = np.concatenate([np.arange(starts[k], starts[k] + counts[k]) for k in pick])
        for j in range(len(OBS)):
            yy, ss = y[idx, j], s[idx, j]
            roc_auc_score(yy, ss)
            average_precision_score(yy, ss)
            f1_score(yy, ss >= 0.5)
            brier_score_loss(yy, ss)
    peer = (time.time() - t0) / a.peer_resamples * a.resamples
    print(f"{n} images x {len(OBS)} observations x {a.resamples} patient resamples")
    print(f"radfm evaluate (all metrics, end to end incl. JSON parsing): {ours:.1f} s")
    print(f"numpy + scikit-learn (4 metrics, {a.peer_resamples} resamples scaled to {a.resamples}): {peer:.1f} s")
    print(f"ratio (peer / radfm): {peer / ours:.1f}x")


if __name__ == "__main__":
    main()
