#!/usr/bin/env python3
"""A realistic evaluation case for `radfm evaluate`: patients with 1-3 images,
sex, age and site; five observations whose labels are drawn from a known
probability; a model that is over-confident (it reports sigma(2.5 z) for a true
sigma(z)) and much weaker at site C; a validation split of 20% of patients.

    python3 tools/eval_demo.py OUT_DIR [--patients 1500] [--seed 0]

Writes OUT_DIR/truth.jsonl and OUT_DIR/pred.jsonl. The report should find the
site-C gap and the miscalibration, and temperature scaling (T near 2.5) should
reduce the ECE. Standard library only.
"""
import argparse
import json
import math
import random
from pathlib import Path

OBS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--patients", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "truth.jsonl", "w") as t, open(out / "pred.jsonl", "w") as p:
        for pid in range(a.patients):
            sex = rng.choice("FM")
            age = rng.randint(20, 95)
            site = rng.choice(["site-A", "site-B", "site-C"])
            split = "val" if rng.random() < 0.2 else "test"
            base = {o: rng.gauss(0, 1.2) for o in OBS}  # patient-level severity
            for k in range(rng.randint(1, 3)):
                labels, scores = {}, {}
                for j, o in enumerate(OBS):
                    z = -1.0 - 0.2 * j + 1.8 * base[o] + rng.gauss(0, 0.5)
                    labels[o] = int(rng.random() < 1 / (1 + math.exp(-z)))
                    # the model sees z (blurred, much more at site C) and is over-confident
                    seen = z + rng.gauss(0, 2.5 if site == "site-C" else 0.6)
                    scores[o] = round(1 / (1 + math.exp(-2.5 * seen)), 6)
                iid = f"img-{pid}-{k}"
                t.write(json.dumps({"id": iid, "patient_id": f"P{pid:05d}", "sex": sex, "age": age,
                                    "site": site, "view": rng.choice(["PA", "AP"]), "split": split,
                                    "labels": labels}) + "\n")
                p.write(json.dumps({"id": iid, "scores": scores}) + "\n")


if __name__ == "__main__":
    main()
