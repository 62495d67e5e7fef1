"""Write the small evaluation fixture that `radfm evaluate`'s metrics.json
snapshot test reads (crates/radfm/tests/fixtures/eval/): 60 patients at two
sites, one or two images each, two observations with some uncertain (-1)
and absent (null) labels, a validation split, and probabilities (the
effusion score is the logistic of a noisy logit). Deterministic (seeded);
run from the repo root."""
import json
import math
import random

rng = random.Random(7)
truth, pred = [], []
for p in range(60):
    site = "A" if p % 2 == 0 else "B"
    split = "val" if p < 15 else "test"
    age = 25 + (p * 7) % 70
    sex = "F" if p % 3 else "M"
    for k in range(1 + (p % 2)):
        iid = f"img{p:02d}-{k}"
        edema = rng.random() < 0.35
        effusion = rng.random() < 0.25
        labels = {"Edema": int(edema), "Pleural Effusion": int(effusion)}
        if p % 9 == 4:
            labels["Edema"] = -1
        if p % 11 == 3:
            labels["Pleural Effusion"] = None
        truth.append({"id": iid, "patient_id": f"P{p:02d}", "site": site, "age": age,
                      "sex": sex, "split": split, "labels": labels})
        s_edema = min(1.0, 0.15 + (0.2 if edema else 0.0) + 0.5 * rng.random())
        z = (1.2 if effusion else -0.8) + rng.gauss(0, 1.0)
        pred.append({"id": iid, "scores": {"Edema": round(s_edema, 4)}})
        pred.append({"id": iid + "-logit", "scores": {"Pleural Effusion": round(z, 4)}, "kind": "logit"})
# one prediction line per image: merge the two halves
merged = {}
for line in pred:
    iid = line["id"].removesuffix("-logit")
    m = merged.setdefault(iid, {"id": iid, "scores": {}})
    if line.get("kind") == "logit":
        m["scores"]["Pleural Effusion"] = round(1 / (1 + math.exp(-line["scores"]["Pleural Effusion"])), 4)
    else:
        m["scores"].update(line["scores"])
out = "crates/radfm/tests/fixtures/eval"
with open(f"{out}/truth.jsonl", "w") as f:
    f.writelines(json.dumps(t) + "\n" for t in truth)
with open(f"{out}/pred.jsonl", "w") as f:
    f.writelines(json.dumps(m) + "\n" for m in merged.values())
