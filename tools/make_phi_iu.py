#!/usr/bin/env python3
"""Generate the PHI-injection test set on the real IU chest X-ray reports.

    python3 tools/make_phi_iu.py ../shared/data/iu-xray/iu-xray-reports-dev.tgz \
        crates/radfm-report/tests/fixtures/phi_iu

writes `dev.jsonl.gz` (the even-numbered reports, seed 1: the set the scrubber was
tuned on) and `test.jsonl.gz` (the odd-numbered reports, seed 2: the set its
figures are quoted on). Standard library only; deterministic.

The IU texts are CC BY-NC-ND: edited copies may not be committed. So a case
does not hold its text; it holds *pieces*, and the text is their concatenation:

- `[a, b]`: characters a..b of the original report text (as radfm reads it:
  `LABEL: body` per <AbstractText>, joined by newlines);
- `{"t": "..."}`: glue text written here (not PHI);
- `{"phi": "...", "type": "NAME"}`: an injected PHI string and its type;
- `{"clin": "..."}`: an injected clinical phrase that must survive (eponyms,
  devices, vertebral levels, measurements, ages under 90).

`sha` is the first 16 hex digits of the SHA-256 of the original text, so a
reader that rebuilds the text differently fails loudly.

PHI is injected in the places it occurs in real reports: a header line, the
start of the indication, the comparison, the end of the impression (callbacks,
signatures) and a footer. Most of it has no cue word before it; names are
drawn from the 1990 Census lists (frequent names), from names that are also
common words (Rose, Young, Hunter, ...), and from names outside the Census
lists (which only context can find). All names, numbers and places are
invented combinations; none is a real patient's.
"""
import gzip
import hashlib
import io
import json
import os
import random
import re
import sys
import tarfile

DATA = os.path.join(os.path.dirname(__file__), "..", "crates", "radfm-report", "data")

ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def unescape(s):
    # the same entity rule as radfm_report::input (named five, &#N;, &#xH;)
    out, i = [], 0
    while True:
        j = s.find("&", i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j])
        k = s.find(";", j)
        ent = s[j + 1:k] if 0 <= k - j <= 10 else None
        ch = None
        if ent is not None:
            if ent in ENTITIES:
                ch = ENTITIES[ent]
            elif ent.startswith("#x"):
                try:
                    ch = chr(int(ent[2:], 16))
                except ValueError:
                    pass
            elif ent.startswith("#"):
                try:
                    ch = chr(int(ent[1:]))
                except ValueError:
                    pass
        if ch is None:
            out.append("&")
            i = j + 1
        else:
            out.append(ch)
            i = k + 1


def iu_texts(tgz):
    texts = {}
    with tarfile.open(tgz) as tf:
        for m in tf.getmembers():
            if not m.isfile() or not m.name.endswith(".xml"):
                continue
            xml = tf.extractfile(m).read().decode("utf-8")
            parts = []
            # the same element rule as radfm_report::input: <AbstractText .../> is an empty section
            for m2 in re.finditer(r"<AbstractText(?=[\s>/])([^>]*)>", xml):
                attrs = m2.group(1)
                if attrs.endswith("/"):
                    body = ""
                else:
                    end = xml.index("</AbstractText>", m2.end())
                    body = xml[m2.end():end]
                lab = re.search(r'Label="([^"]*)"', attrs)
                label = lab.group(1).strip() if lab else "FINDINGS"
                parts.append(f"{label}: {unescape(body.strip())}")
            if parts:
                texts[os.path.basename(m.name)[:-4]] = "\n".join(parts)
    return texts


def load(name, n=None):
    with open(os.path.join(DATA, name)) as f:
        words = [w.strip() for w in f if w.strip()]
    return words[:n] if n else words


FIRST = [w.capitalize() for w in load("first_names.txt", 1200)]
LAST = [w.capitalize() for w in load("surnames.txt", 6000)]
CENSUS = set(load("first_names.txt")) | set(load("surnames.txt"))
# names that are also common words
WORDY_FIRST = ["Rose", "Hope", "Faith", "Joy", "May", "June", "Grace", "Mark", "Will", "Frank", "Bill",
               "Dawn", "Summer", "Ray", "Carol", "Dean", "Grant", "Hunter", "Major", "Rich", "Sky", "Iris",
               "Ivy", "Lily", "Pearl", "Ruby", "Autumn", "Violet", "Robin", "Chase"]
WORDY_LAST = ["Young", "Hunter", "Bell", "White", "Brown", "Green", "Black", "Gray", "Little", "King",
              "Long", "Price", "Page", "Wade", "Lane", "Miles", "Bishop", "Rose", "Hill", "Wood", "Stone",
              "Church", "Parks", "Banks", "Rice", "Snow", "Fox", "Frost", "Hale", "Sharp", "Strong", "Moody",
              "Best", "Cash", "Gold", "Free", "Love", "Sweet", "Cross", "Marsh"]
# names outside the Census lists (filtered below), from many languages
RARE_FIRST = ["Oluwaseun", "Xiomara", "Thandiwe", "Ikaika", "Siobhan", "Dagny", "Anahera", "Temperance",
              "Zbigniew", "Radhika", "Yevgenia", "Kwabena", "Leocadia", "Tancredi", "Bronisława", "Ingeborg",
              "Chidera", "Wiremu", "Saoirse", "Ifeoma", "Mirela", "Tsubasa", "Nnamdi", "Oyelaran", "Kalinda"]
RARE_LAST = ["Okonkwo", "Adebayo-Smythe", "Wojciechowska", "Nakashima-Reyes", "Oyelowo", "Przybylski",
             "Haugland", "Thorvaldsen", "Ekwueme", "Ramaswamy", "Tshabalala", "Vukovich", "Nwachukwu",
             "Kowalczyk", "Iyengar", "Fitzwilliam-Hart", "Abernathy-Quist", "Szczepanik", "Oduya",
             "Mbeki-Jones", "Valenzuela-Ortiz", "Grzelak", "Lindqvist-Berg", "Achterberg", "Zeleznik"]
RARE_FIRST = [n for n in RARE_FIRST if n.lower() not in CENSUS]
RARE_LAST = [n for n in RARE_LAST if n.lower() not in CENSUS]

CITIES = [("Carmel", "IN"), ("Fishers", "IN"), ("Muncie", "IN"), ("Kokomo", "Indiana"), ("Bloomington", "IN"),
          ("Terre Haute", "IN"), ("Lafayette", "IN"), ("Evansville", "Indiana"), ("Springfield", "IL"),
          ("Peoria", "Illinois"), ("Dayton", "OH"), ("Toledo", "Ohio"), ("Louisville", "KY"),
          ("Ann Arbor", "MI"), ("Grand Rapids", "Michigan"), ("Madison", "WI"), ("Des Moines", "IA"),
          ("Fort Wayne", "IN"), ("South Bend", "IN"), ("Champaign", "IL"), ("Noblesville", "IN"),
          ("Columbus", "OH"), ("Cincinnati", "Ohio"), ("Lexington", "KY"), ("Naperville", "IL")]
STREETS = ["Maple", "Oak", "Washington", "Meridian", "College", "Keystone", "Lincoln", "Elm", "Park",
           "Jefferson", "Hickory", "Sycamore", "Lakeview", "Ridge", "Delaware", "Michigan", "Walnut"]
SUFFIX = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Drive", "Dr", "Lane", "Ln", "Court", "Ct",
          "Boulevard", "Blvd", "Way", "Place"]
INSTITUTIONS = ["Methodist Hospital", "St. Vincent Medical Center", "Riverview Health", "Community North Hospital",
                "Eskenazi Health", "Franciscan Health Crown Point", "Union Hospital", "Mercy Medical Center",
                "Hendricks Regional Health", "Sacred Heart Hospital", "Good Samaritan Hospital",
                "Deaconess Clinic", "Parkview Regional Medical Center", "Wishard Memorial Hospital",
                "Lutheran Hospital of Indiana", "Northside Imaging Center", "Reid Health", "IU Health Arnett"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
CLINICAL = ["Kerley B lines are present at the bases.", "Swan-Ganz catheter tip in the right pulmonary artery.",
            "No Hampton hump.", "Westermark sign is absent.", "History of Hodgkin lymphoma.",
            "Dobhoff tube tip in the stomach.", "Port-A-Cath tip at the cavoatrial junction.",
            "Degenerative changes at T8-T9.", "Nodule measures 8 x 6 mm.", "Mild L1 compression deformity.",
            "Harrington rods are unchanged.", "Foley catheter in place.", "Jackson-Pratt drain in the left neck.",
            "PleurX catheter at the right base.", "Follow-up per Fleischner Society guidelines.",
            "Chilaiditi sign.", "Small Bochdalek hernia.", "Morgagni hernia is stable.",
            "Schmorl nodes in the lower thoracic spine.", "Known Paget disease of the right humerus.",
            "Hill-Sachs deformity of the left humeral head.", "Pancoast tumor is not excluded.",
            "Golden S sign of right upper lobe collapse.", "History of Wegener granulomatosis.",
            "Heimlich valve attached to the chest tube.", "Hickman catheter tip in the SVC.",
            "Parkinson disease.", "History of Crohn disease.", "The 6th posterior rib is healed.",
            "ET tube 5 cm above the carina.", "Opacity measures 2.1 x 1.4 cm.", "Sats 92% on 2 L.",
            "C5-C6 fusion hardware.", "A 45-year-old man.", "A 72 year old woman.", "A 67 yo F.",
            "Status post CABG in 2015.", "Kerley A lines.", "Luftsichel sign.", "Salter-Harris II fracture.",
            "Graves disease.", "Down syndrome.", "Marfan syndrome with sternotomy.", "Ewing sarcoma history.",
            "Kaposi sarcoma.", "Cushing syndrome.", "Poland syndrome.", "Swyer-James syndrome.",
            "Hodgkin disease in remission.", "Mounier-Kuhn syndrome."]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, xs):
        return self.r.choice(xs)

    # --- PHI values -------------------------------------------------------
    def first(self):
        u = self.r.random()
        return self.pick(FIRST[:300] if u < 0.45 else FIRST if u < 0.65 else WORDY_FIRST if u < 0.82 else RARE_FIRST)

    def last(self):
        u = self.r.random()
        return self.pick(LAST[:1500] if u < 0.45 else LAST if u < 0.62 else WORDY_LAST if u < 0.82 else RARE_LAST)

    def full_name(self):
        f, l = self.first(), self.last()
        u = self.r.random()
        if u < 0.45:
            return f"{f} {l}"
        if u < 0.60:
            return f"{l}, {f}"
        if u < 0.72:
            return f"{f} {self.pick('ABCDEFGHJKLMNPRSTW')}. {l}"
        if u < 0.80:
            return f"{f[0]}. {l}"
        if u < 0.88:
            return f"{f} {l}".upper()
        return f"{f} {l}"

    def date(self):
        y, m, d = self.r.randint(1998, 2025), self.r.randint(1, 12), self.r.randint(1, 28)
        return self.pick([
            f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}",
            f"{MONTHS[m - 1]} {d}, {y}", f"{MONTHS[m - 1][:3]} {d} {y}", f"{d} {MONTHS[m - 1]} {y}",
            f"{m:02d}-{d:02d}-{y}", f"{m}/{d}", f"{MONTHS[m - 1]} {d}", f"{MONTHS[m - 1]} {y}",
            f"{y}{m:02d}{d:02d}", f"{d}.{m}.{y}",
        ])

    def time(self):
        h, mi = self.r.randint(0, 23), self.r.randint(0, 59)
        h12 = h % 12 or 12
        ap = "AM" if h < 12 else "PM"
        return self.pick([f"{h:02d}:{mi:02d}", f"{h12}:{mi:02d} {ap}", f"{h12}:{mi:02d} {ap.lower()}",
                          f"{h12}:{mi:02d}{ap.lower()[0]}", f"{h:02d}{mi:02d} hours", f"{h12} {ap.lower()}",
                          f"{h12}{ap.lower()}", f"{h:02d}:{mi:02d}:{self.r.randint(0, 59):02d}"])

    def phone(self):
        a, b, c = self.r.randint(201, 989), self.r.randint(201, 989), self.r.randint(0, 9999)
        return self.pick([f"{a}-{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"{a}.{b}.{c:04d}", f"{b}-{c:04d}",
                          f"1-{a}-{b}-{c:04d}", f"+1 {a} {b} {c:04d}", f"{a}{b}{c:04d}", f"x{c:04d}",
                          f"ext. {self.r.randint(1000, 99999)}", f"({a}){b}-{c:04d}"])

    def ident(self):
        n = self.r.randint
        return self.pick([str(n(1000000, 99999999)), f"{n(0, 99999999):08d}", f"A{n(100000, 9999999)}",
                          f"MRN{n(100000, 9999999)}", f"{n(100, 999)}-{n(10, 99)}-{n(1000, 9999)}",
                          f"E{n(10000000, 99999999)}", f"RAD-{n(2010, 2025)}-{n(10000, 99999)}",
                          f"{n(10, 99)}-{n(1000000, 9999999)}", f"CX{n(100000, 999999)}"])

    def street(self):
        return f"{self.r.randint(1, 19999)} {self.pick(['', 'N. ', 'S. ', 'East ', 'W '])}{self.pick(STREETS)} {self.pick(SUFFIX)}"

    def zip(self):
        return self.pick([f"4{self.r.randint(6000, 7999)}", f"4{self.r.randint(6000, 7999)}-{self.r.randint(1000, 9999)}"])

    def age(self):
        a = self.r.randint(90, 104)
        # (text before, the PHI): "age 93" is "age " then "93"
        return self.pick([("", f"{a}-year-old"), ("", f"{a} year old"), ("", f"{a} yo"), ("", f"{a} y/o"),
                          ("", f"{a}yo"), ("age ", f"{a}"), ("aged ", f"{a}"), ("", f"{a} years old"),
                          ("", f"{a}M"), ("", f"{a} F"), ("", f"{a}-yr-old")])

    def email(self, f, l):
        return self.pick([f"{f.lower()}.{l.lower()}@{self.pick(['iuhealth.org', 'gmail.com', 'yahoo.com', 'mercy.net'])}",
                          f"{f[0].lower()}{l.lower()}{self.r.randint(1, 99)}@hotmail.com",
                          f"{l.lower()}_{f.lower()}@radiology.example.edu"]).replace(" ", "").replace(",", "")

    def url(self):
        return self.pick([f"https://pacs.{self.pick(['iuhealth', 'methodist', 'eskenazi'])}.org/viewer?study={self.r.randint(100000, 999999)}",
                          f"http://portal.riverview.com/patient/{self.r.randint(10000, 99999)}",
                          f"www.mychart{self.r.randint(1, 9)}.org/{self.r.randint(1000, 9999)}",
                          f"https://imaging.example.org/s/{self.r.randint(10 ** 8, 10 ** 9)}"])


def case(g, rid, text):
    """Pieces for one report: the original in spans, with PHI spliced in."""
    # section spans of the original
    lines, pos = [], 0
    for line in text.split("\n"):
        lines.append((pos, pos + len(line), line))
        pos += len(line) + 1
    pieces = []
    phi = lambda v, t: pieces.append({"phi": v, "type": t})
    glue = lambda s: pieces.append({"t": s})
    clin = lambda s: pieces.append({"clin": s})

    def put_age():
        before, a = g.age()
        if before:
            glue(before)
        phi(a, "AGE")

    def name_phi():
        # a name, as the PHI string (titles are not PHI)
        n = g.full_name()
        phi(n, "NAME")
        return n

    # a header line before the report (half the reports)
    if g.r.random() < 0.5:
        k = g.r.randrange(6)
        if k == 0:
            phi(g.pick(INSTITUTIONS), "INSTITUTION"); glue(" Department of Radiology\n")
        elif k == 1:
            name_phi(); glue("  "); phi(g.ident(), "ID"); glue("  "); phi(g.date(), "DATE"); glue("\n")
        elif k == 2:
            glue("Patient: "); name_phi(); glue("   MRN: "); phi(g.ident(), "ID"); glue("   DOB: "); phi(g.date(), "DATE"); glue("\n")
        elif k == 3:
            phi(g.ident(), "ID"); glue(" CHEST 2 VIEWS "); phi(g.date(), "DATE"); glue(" "); phi(g.time(), "TIME"); glue("\n")
        elif k == 4:
            glue("Acc "); phi(g.ident(), "ID"); glue(" / "); name_phi(); glue("\n")
        else:
            glue("Exam date: "); phi(g.date(), "DATE"); glue(" at "); phi(g.time(), "TIME"); glue(". Ordering: "); name_phi(); glue("\n")
    for li, (a, b, line) in enumerate(lines):
        label, _, body = line.partition(": ")
        start = a + len(label) + 2
        u = g.r.random()
        if label == "INDICATION" and u < 0.7:
            pieces.append([a, start])
            k = g.r.randrange(7)
            if k == 0:
                name_phi(); glue(", "); put_age(); glue(" with ")
            elif k == 1:
                name_phi(); glue(" presents with ")
            elif k == 2:
                phi(g.last(), "NAME"); glue(" is a "); put_age(); glue(" patient. ")
            elif k == 3:
                name_phi(); glue(": ")
            elif k == 4:
                glue("Pt "); name_phi(); glue(", "); clin(g.pick(["45-year-old", "62 yo", "71 year old", "38M"])); glue(", ")
            elif k == 5:
                phi(g.first(), "NAME"); glue(" has ")
            else:
                glue("Transfer from "); phi(g.pick(INSTITUTIONS), "INSTITUTION"); glue(". ")
            pieces.append([start, b])
        elif label == "COMPARISON" and u < 0.6:
            pieces.append([a, b])
            k = g.r.randrange(5)
            if k == 0:
                glue(" Prior study "); phi(g.date(), "DATE"); glue(" at "); phi(g.pick(INSTITUTIONS), "INSTITUTION"); glue(".")
            elif k == 1:
                glue(" Outside films from "); c, s = g.pick(CITIES); phi(f"{c}, {s}", "ADDRESS"); glue(", dated "); phi(g.date(), "DATE"); glue(".")
            elif k == 2:
                glue(" "); phi(g.date(), "DATE"); glue(", "); phi(g.time(), "TIME"); glue(".")
            elif k == 3:
                glue(" Chest x-ray "); phi(g.date(), "DATE"); glue(" (accession "); phi(g.ident(), "ID"); glue(").")
            else:
                glue(" CT from "); phi(g.date(), "DATE"); glue(" in "); phi(g.pick(CITIES)[0], "ADDRESS"); glue(".")
        elif label in ("FINDINGS", "IMPRESSION") and u < 0.25:
            pieces.append([a, b])
            glue(" "); clin(g.pick(CLINICAL))
        else:
            pieces.append([a, b])
        last_line = li == len(lines) - 1
        if last_line and g.r.random() < 0.8:
            k = g.r.randrange(12)
            if k == 0:
                glue(" Findings called to "); name_phi(); glue(" at "); phi(g.time(), "TIME"); glue(" on "); phi(g.date(), "DATE"); glue(".")
            elif k == 1:
                glue(" "); name_phi(); glue(" notified "); phi(g.date(), "DATE"); glue(".")
            elif k == 2:
                glue(" Callback "); phi(g.phone(), "PHONE"); glue(".")
            elif k == 3:
                glue(" Results phoned to "); phi(g.phone(), "PHONE"); glue(" at "); phi(g.time(), "TIME"); glue(".")
            elif k == 4:
                glue("\nElectronically signed: "); name_phi(); glue(" "); phi(g.date(), "DATE"); glue(" "); phi(g.time(), "TIME")
            elif k == 5:
                glue("\n"); f, l = g.first(), g.last(); phi(f"{f} {l}", "NAME"); glue(g.pick([" MD", ", MD", " M.D.", " DO", ", RN"]))
            elif k == 6:
                glue(" Images: "); phi(g.url(), "URL")
            elif k == 7:
                f, l = g.first(), g.last(); glue(" Questions to "); phi(g.email(f, l), "EMAIL"); glue(".")
            elif k == 8:
                glue("\n"); name_phi(); glue(", "); phi(g.street(), "ADDRESS"); glue(", "); c, s = g.pick(CITIES); phi(f"{c}, {s} {g.zip()}", "ADDRESS")
            elif k == 9:
                glue(" Discussed with "); phi(g.first(), "NAME"); glue(" in the ED, pager "); phi(g.phone(), "PHONE"); glue(".")
            elif k == 10:
                glue(" SSN "); phi(f"{g.r.randint(100, 899)}-{g.r.randint(10, 99)}-{g.r.randint(1000, 9999)}", "ID"); glue(".")
            else:
                glue(" Patient lives in "); c, _ = g.pick(CITIES); phi(c, "ADDRESS"); glue(" with "); phi(g.first(), "NAME"); glue(".")
        if not last_line:
            glue("\n")
    return {"id": rid, "sha": hashlib.sha256(text.encode()).hexdigest()[:16], "pieces": pieces}


def main(tgz, out):
    texts = iu_texts(tgz)
    ids = sorted(texts, key=lambda s: int(s) if s.isdigit() else s)
    os.makedirs(out, exist_ok=True)
    for name, parity, seed in [("dev.jsonl.gz", 0, 1), ("test.jsonl.gz", 1, 2)]:
        g = Gen(seed)
        n = 0
        with gzip.GzipFile(os.path.join(out, name), "wb", mtime=0) as raw, io.TextIOWrapper(raw, "utf-8") as f:
            for i, rid in enumerate(ids):
                if i % 2 != parity:
                    continue
                c = case(g, rid, texts[rid])
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
                n += sum(1 for p in c["pieces"] if isinstance(p, dict) and "phi" in p)
        print(f"{name}: {n} PHI strings", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
