#!/usr/bin/env python3
"""Reference probes from scikit-learn for radfm-adapt's logistic regression.

A small, fixed problem (float32 features, as embeddings are stored): for each C and each
class-weight setting, scikit-learn's LogisticRegression (L2, intercept unpenalised) fitted to
convergence, and its predict_proba on held-out rows. The minimiser of the objective is unique,
so it is fitted with two solvers (newton-cholesky and lbfgs, both with a tight tolerance) and
their agreement is recorded: the fixture is the optimum, not one solver's stopping point.
(scikit-learn's default tol=1e-4 stops short of the optimum by up to ~1e-3 in probability.)

Usage: python tools/probe_reference.py > crates/radfm-adapt/tests/fixtures/sklearn_probe.json
"""
import json
import sys
import warnings

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")
rng = np.random.default_rng(20261201)
n_train, n_test, d = 300, 80, 12
# correlated features of unequal scale, as an encoder's are
mix = rng.normal(size=(d, d)) * 0.4 + np.eye(d)
scale = np.exp(rng.normal(size=d))
x = (rng.normal(size=(n_train + n_test, d)) @ mix * scale).astype(np.float32)
true_w = rng.normal(size=d) / scale
z = x.astype(np.float64) @ true_w - 1.2
y = (z + rng.logistic(size=len(z)) > 0).astype(int)
xtr, ytr, xte = x[:n_train], y[:n_train], x[n_train:]

cases = []
for class_weight in [None, "balanced"]:
    for c in [1e-4, 1e-2, 1.0, 100.0]:
        fits = []
        for solver in ["newton-cholesky", "lbfgs"]:
            m = LogisticRegression(C=c, class_weight=class_weight, solver=solver, tol=1e-12,
                                   max_iter=100000)
            m.fit(xtr.astype(np.float64), ytr)
            fits.append(m)
        p = [m.predict_proba(xte.astype(np.float64))[:, 1] for m in fits]
        cases.append({
            "C": c,
            "class_weight": class_weight or "none",
            "coef": fits[0].coef_[0].tolist(),
            "intercept": float(fits[0].intercept_[0]),
            "proba": p[0].tolist(),
            "solvers_differ_by": float(np.abs(p[0] - p[1]).max()),
        })
json.dump({
    "made_by": f"tools/probe_reference.py, scikit-learn {sklearn.__version__}",
    "d": d,
    "train_x": [float(v) for v in xtr.ravel()],
    "train_y": ytr.tolist(),
    "test_x": [float(v) for v in xte.ravel()],
    "cases": cases,
}, sys.stdout)
