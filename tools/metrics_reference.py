#!/usr/bin/env python3
"""Golden fixtures and reference values for `radfm reports score`.

Writes, under crates/radfm-report/tests/fixtures/:
  metrics_pred.jsonl, metrics_ref.jsonl   generated/reference report pairs (id, text)
  metrics_reference.json                  BLEU-1..4 from sacrebleu and nltk, ROUGE-L from rouge-score

Run with a venv holding sacrebleu, nltk and rouge-score:
    python3 tools/metrics_reference.py

Both sides use radfm's pinned normalisation (rouge-score's default tokenizer:
lowercase, non-[a-z0-9] to spaces, split); BLEU is computed on the
space-joined tokens with sacrebleu(tokenize="none", smooth_method="none")
and nltk corpus_bleu (no smoothing).
"""
import json
import random
import re
from pathlib import Path

import sacrebleu
from nltk.translate.bleu_score import corpus_bleu
from rouge_score import rouge_scorer

OUT = Path(__file__).resolve().parent.parent / "crates/radfm-report/tests/fixtures"

SENTS = [
    "The heart size is normal.", "Heart size is within normal limits.", "Mild cardiomegaly.",
    "The lungs are clear.", "No focal consolidation.", "No pleural effusion or pneumothorax.",
    "Small left pleural effusion.", "Bibasilar atelectasis.", "Patchy right lower lobe opacity, possibly pneumonia.",
    "Interstitial edema.", "Right IJ catheter tip in the SVC.", "Degenerative changes of the thoracic spine.",
    "No acute cardiopulmonary abnormality.", "Stable 8 mm nodule in the right upper lobe.",
    "Healed left rib fractures.", "Low lung volumes.", "Calcified granuloma in the left upper lobe.",
    "Moderate right pneumothorax.", "Pulmonary vascular congestion.", "Hyperinflated lungs compatible with COPD.",
]


def norm(t):
    return re.sub(r"[^a-z0-9]+", " ", t.lower()).split()


def main():
    rng = random.Random(7)
    preds, refs = [], []
    for i in range(40):
        ref = " ".join(rng.sample(SENTS, rng.randint(2, 5)))
        kind = i % 5
        if kind == 0:
            pred = ref  # identical
        elif kind == 1:
            pred = " ".join(rng.sample(SENTS, rng.randint(1, 4)))  # unrelated-ish
        elif kind == 2:
            words = ref.split()
            pred = " ".join(w for w in words if rng.random() > 0.3)  # deletions
        elif kind == 3:
            pred = ref.upper().replace(".", " ;")  # case and punctuation only
        else:
            pred = ref + " " + rng.choice(SENTS)  # an extra sentence
        preds.append({"id": f"r{i:02d}", "text": pred})
        refs.append({"id": f"r{i:02d}", "text": ref})
    # edge cases: a one-word prediction, and an empty one
    preds.append({"id": "short", "text": "Clear."})
    refs.append({"id": "short", "text": "The lungs are clear."})
    preds.append({"id": "empty", "text": ""})
    refs.append({"id": "empty", "text": "No acute disease."})
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("metrics_pred.jsonl", preds), ("metrics_ref.jsonl", refs)):
        (OUT / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    # radfm pairs by id in sorted order; corpus BLEU does not depend on order
    ids = sorted(r["id"] for r in preds)
    p = {r["id"]: r["text"] for r in preds}
    r = {x["id"]: x["text"] for x in refs}
    hyp_tok = [norm(p[i]) for i in ids]
    ref_tok = [norm(r[i]) for i in ids]
    hyp_s = [" ".join(t) for t in hyp_tok]
    ref_s = [" ".join(t) for t in ref_tok]
    out = {"n": len(ids)}
    for n in range(1, 5):
        b = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", max_ngram_order=n)
        out[f"bleu{n}_sacrebleu"] = b.corpus_score(hyp_s, [ref_s]).score / 100.0
        w = tuple([1.0 / n] * n)
        out[f"bleu{n}_nltk"] = corpus_bleu([[t] for t in ref_tok], hyp_tok, weights=w)
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    ps, rs, fs = [], [], []
    for i in ids:
        s = sc.score(r[i], p[i])["rougeL"]
        ps.append(s.precision)
        rs.append(s.recall)
        fs.append(s.fmeasure)
    out["rougeL_precision"] = sum(ps) / len(ps)
    out["rougeL_recall"] = sum(rs) / len(rs)
    out["rougeL_f1"] = sum(fs) / len(fs)
    out["versions"] = {"sacrebleu": sacrebleu.__version__, "nltk": __import__("nltk").__version__,
                       "rouge_score": __import__("importlib.metadata").metadata.version("rouge-score")}
    (OUT / "metrics_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
