#!/usr/bin/env python3
"""Generate the committed PHI-scrubbing fixture: 50 synthetic chest X-ray
reports with injected PHI (names, dates, MRNs, accession numbers, phone
numbers, e-mail and street addresses, ages over 89), each listing the exact
PHI strings it contains.

    python3 tools/make_phi_reports.py > crates/radfm-report/tests/fixtures/phi_reports.jsonl

Deterministic (seeded); standard library only. All names and numbers are invented.
"""
import json
import random

rng = random.Random(20261128)

FIRST = ["Alonso", "Beatrix", "Casimir", "Delphine", "Evander", "Fenella", "Gideon", "Henrietta",
         "Ignatius", "Jocasta", "Leopold", "Marisol", "Norbert", "Ottilie", "Percival", "Rosalind"]
LAST = ["Quixote", "Abernathy", "Okonkwo", "Vasquez-Lind", "Thorngood", "Pemberton", "Halvorsen",
        "Nakagawa", "O'Rourke", "Delacroix", "Szymanski", "Featherstone", "Ibarra", "Lindqvist"]
STREETS = ["Elm Street", "Birch Avenue", "Harbor Road", "Maple Lane", "Kingsway Drive", "Orchard Court"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]

FINDINGS = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. No focal consolidation. Small left pleural effusion.",
    "Patchy right lower lobe opacity, possibly pneumonia. No pneumothorax.",
    "Right IJ central venous catheter tip in the SVC. Lungs are clear.",
    "Plate-like atelectasis at the left base. Heart size upper limits of normal.",
    "Stable 8 mm nodule in the right upper lobe. No effusion.",
    "Healed left rib fractures. No acute osseous abnormality.",
    "Interstitial edema with small bilateral effusions. Cardiomegaly.",
    "Small right apical pneumothorax. Left chest tube in place.",
    "No acute cardiopulmonary abnormality. Degenerative changes of the spine.",
]


def name():
    return rng.choice(FIRST), rng.choice(LAST)


def date():
    y = rng.randint(2015, 2025)
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    style = rng.randrange(4)
    if style == 0:
        return f"{m:02d}/{d:02d}/{y}"
    if style == 1:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 2:
        return f"{MONTHS[m - 1]} {d}, {y}"
    return f"{d} {MONTHS[m - 1][:3]} {y}"


def phone():
    a, b, c = rng.randint(200, 989), rng.randint(200, 989), rng.randint(1000, 9999)
    return rng.choice([f"{a}-{b}-{c}", f"({a}) {b}-{c}", f"{a}.{b}.{c}"])


def mrn():
    return str(rng.randint(10_000_000, 99_999_999))


def accession():
    return f"A{rng.randint(100000, 999999)}"


def main():
    out = []
    for i in range(50):
        phi = []
        parts = []
        kinds = rng.sample(range(8), 4)
        f, l = name()
        if 0 in kinds:
            m = mrn()
            parts.append(f"MRN: {m}.")
            phi.append(m)
        if 1 in kinds:
            d = date()
            parts.append(f"COMPARISON: Chest radiograph dated {d}.")
            phi.append(d)
        if 2 in kinds:
            age = rng.randint(90, 104)
            parts.append(f"INDICATION: {age}-year-old with cough.")
            phi.append(f"{age}-year")
        else:
            parts.append("INDICATION: Cough and fever.")
        parts.append("FINDINGS: " + rng.choice(FINDINGS))
        imp = "IMPRESSION: " + rng.choice(FINDINGS)
        if 3 in kinds:
            df, dl = name()
            imp += f" Findings discussed with Dr. {df} {dl} by telephone at {rng.randint(1, 12)}:{rng.randint(10, 59)}."
            phi += [df, dl]
        if 4 in kinds:
            p = phone()
            imp += f" Please call {p} with questions."
            phi.append(p)
        if 5 in kinds:
            a = accession()
            imp += f" Accession number {a}."
            phi.append(a)
        if 6 in kinds:
            num = rng.randint(10, 9999)
            street = rng.choice(STREETS)
            imp += f" Patient lives at {num} {street}."
            phi.append(f"{num} {street}")
        if 7 in kinds:
            email = f"{f.lower()}.{l.lower().replace(chr(39), '')}@example.org"
            imp += f" Report copied to {email}."
            phi.append(email)
        parts.append(imp)
        # every report names its patient and reader in the header lines
        parts.insert(0, f"Patient: {f} {l}")
        phi += [f, l]
        rf, rl = name()
        signed = date()
        parts.append(f"Dictated by: {rf} {rl}, MD. Signed {signed}.")
        phi += [rf, rl, signed]
        out.append({"id": f"phi-{i:02d}", "text": "\n".join(parts), "phi": phi})
    for r in out:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
