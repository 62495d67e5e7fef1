#!/usr/bin/env python3
"""Fixtures and reference values for radfm-eval, from scikit-learn and from
DeLong's paper.

    python3 tools/eval_reference.py

Writes crates/radfm-eval/tests/fixtures/eval_cases.json: cases of (labels,
scores) including ties, all-equal scores and extreme imbalance, with
scikit-learn's roc_auc_score, average_precision_score, f1_score at 0.5 and
brier_score_loss, the expected calibration error over the bins of
sklearn.calibration.calibration_curve (uniform and quantile, 10 bins), and
DeLong's z and p for pairs of models. The DeLong reference follows the
paper's formulas directly (the O(m*n) placement values with the Heaviside
kernel psi), independent of the midrank algorithm radfm uses.

Needs numpy, scipy and scikit-learn.
"""
import json
from pathlib import Path

import numpy as np
import sklearn
from scipy.stats import norm
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

OUT = Path(__file__).resolve().parent.parent / "crates/radfm-eval/tests/fixtures/eval_cases.json"


def ece(y, p, n_bins, strategy):
    # the bins calibration_curve uses
    if strategy == "quantile":
        bins = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        bins = np.linspace(0.0, 1.0, n_bins + 1)
    binids = np.searchsorted(bins[1:-1], p)
    counts = np.bincount(binids, minlength=len(bins))
    nz = counts != 0
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    return float(np.sum(counts[nz] / len(p) * np.abs(prob_true - prob_pred)))


def psi(x, y):
    return np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))


def delong(y, a, b):
    y = np.asarray(y, bool)
    out = []
    v10, v01 = [], []
    for s in (a, b):
        s = np.asarray(s)
        X, Y = s[y], s[~y]
        P = psi(X[:, None], Y[None, :])  # m x n
        out.append(P.mean())
        v10.append(P.mean(axis=1))
        v01.append(P.mean(axis=0))
    m, n = y.sum(), (~y).sum()
    S10 = np.cov(np.vstack(v10))
    S01 = np.cov(np.vstack(v01))
    S = S10 / m + S01 / n
    var = S[0, 0] + S[1, 1] - 2 * S[0, 1]
    z = (out[0] - out[1]) / np.sqrt(var)
    return {"auc_a": out[0], "auc_b": out[1], "z": float(z), "p": float(2 * norm.sf(abs(z)))}


def main():
    rng = np.random.default_rng(20261128)
    cases = []

    def add(name, y, s):
        y = np.asarray(y, int)
        s = np.asarray(s, float)
        c = {"name": name, "labels": y.tolist(), "scores": s.tolist()}
        c["auroc"] = float(roc_auc_score(y, s))
        c["auprc"] = float(average_precision_score(y, s))
        c["f1_at_0.5"] = float(f1_score(y, s >= 0.5))
        if s.min() >= 0 and s.max() <= 1:
            c["brier"] = float(brier_score_loss(y, s))
            c["ece_uniform_10"] = ece(y, s, 10, "uniform")
            c["ece_quantile_10"] = ece(y, s, 10, "quantile")
        cases.append(c)

    y = rng.random(400) < 0.3
    add("random", y, np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1))
    add("ties", y, np.round(np.clip(rng.normal(0.35 + 0.2 * y, 0.2), 0, 1), 1))
    add("all_equal", y, np.full(400, 0.5))
    yi = np.zeros(1000, bool)
    yi[rng.choice(1000, 3, replace=False)] = True
    add("extreme_imbalance", yi, rng.random(1000) * 0.8 + 0.2 * yi)
    add("logits", y, rng.normal(1.5 * y - 0.5, 1.0))
    add("miscalibrated", y, np.clip(0.2 + 0.7 * rng.random(400), 0, 1) ** 0.5)
    add("edges", [0, 1, 0, 1, 1, 0, 1, 0, 0, 1], [0.0, 0.1, 0.1, 0.2, 0.5, 0.5, 0.9, 1.0, 0.3, 0.7])

    pairs = []
    for k, (n, sep) in enumerate([(300, 0.8), (120, 0.3), (60, 1.2)]):
        y = rng.random(n) < 0.4
        z = rng.normal(0, 1, n)
        a = sep * y + z + rng.normal(0, 0.6, n)
        b = np.round(0.7 * sep * y + z + rng.normal(0, 0.9, n), 1)  # with ties
        d = delong(y, a, b)
        pairs.append({"name": f"pair{k}", "labels": y.astype(int).tolist(), "a": a.tolist(), "b": b.tolist(), **d})

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"sklearn": sklearn.__version__, "cases": cases, "delong": pairs}) + "\n")
    for c in cases:
        print(c["name"], {k: round(v, 6) for k, v in c.items() if isinstance(v, float)})
    for p in pairs:
        print(p["name"], round(p["z"], 6), round(p["p"], 6))


if __name__ == "__main__":
    main()
