"""Tables of tools/label_efficiency.sh's results, as Markdown.

    python3 tools/label_efficiency_table.py WORK_DIR

Reads WORK_DIR/<encoder>-probe-<labels>-eval/metrics.json (radfm evaluate's output) for the
encoders mae, random (its architecture with random weights), clip and random16 (its architecture
with random weights), mae-mean and random-mean (embedded with --pooling mean), and mae-pix-pooled and mae-pix-mean
(MAE with --norm-pix-loss false), where present and the labels weak and truth. Prints:
- the macro AUROC of every draw, averaged over its repeats, with the spread of the repeats:
  the mean over the observations that have positive and negative test images, where an
  observation the draw could not fit (no positive training patient) counts as chance, 0.5;
- per encoder, trained on the weak labels: each observation's AUROC of the first repeat
  (r0) with its patient-bootstrap 95% CI, and the SD across the repeats.
"""
import json
import sys
from pathlib import Path

DRAWS = ["probe-5shot", "probe-20shot", "probe-1%", "probe-10%", "probe-100%"]
ENCODERS = ["mae", "mae-mean", "mae-pix-pooled", "mae-pix-mean", "random", "random-mean", "clip",
            "random16"]


def load(work, enc, labels):
    p = work / f"{enc}-probe-{labels}-eval" / "metrics.json"
    return json.loads(p.read_text()) if p.exists() else None


def auroc(m, run, obs):
    c = m["runs"]["metrics"].get(run, {}).get(obs)
    return None if c is None else c["auroc"]


def runs_of(m, draw):
    return [r for r in m["runs"]["order"] if r == draw or r.startswith(draw + "-r")]


def defined(m):
    """Observations with positive and negative test images."""
    return sorted(o for o, c in m["observations"].items() if 0 < c["positives"] < c["n"])


def macro(m, draw, obs):
    vals = []
    for run in runs_of(m, draw):
        cells = [auroc(m, run, o) for o in obs]
        vals.append(sum(c["value"] if c and c["value"] is not None else 0.5 for c in cells) / len(obs))
    n = len(vals)
    mean = sum(vals) / n
    sd = (sum((v - mean) ** 2 for v in vals) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return mean, sd, n


def main():
    work = Path(sys.argv[1])
    found = {(e, l): load(work, e, l) for e in ENCODERS for l in ["weak", "truth"]}
    any_m = next(m for m in found.values() if m)
    obs = defined(any_m)
    print(f"Macro AUROC over {len(obs)} observations ({', '.join(obs)}; chance where a draw "
          "could not fit one), "
          f"{any_m['n_images']} test images of {any_m['n_patients']} patients; "
          "mean of the repeats (SD across them)\n")
    print("| encoder | labels | " + " | ".join(d.removeprefix("probe-") for d in DRAWS) + " |")
    print("|---|---|" + "---|" * len(DRAWS))
    for (enc, labels), m in found.items():
        if not m:
            continue
        cells = []
        for d in DRAWS:
            mean, sd, n = macro(m, d, obs)
            cells.append(f"{mean:.3f}" + (f" ({sd:.3f})" if n > 1 else ""))
        print(f"| {enc} | {labels} | " + " | ".join(cells) + " |")
    for enc in ENCODERS:
        m = found[(enc, "weak")]
        if not m:
            continue
        print(f"\n{enc}, weak labels: AUROC of r0 [patient-bootstrap 95% CI], SD across the repeats\n")
        print("| observation | test positives | " + " | ".join(d.removeprefix("probe-") for d in DRAWS) + " |")
        print("|---|---|" + "---|" * len(DRAWS))
        for o in obs:
            cells = []
            for d in DRAWS:
                runs = runs_of(m, d)
                c = auroc(m, runs[0], o)
                if c is None or c["value"] is None:
                    cells.append("not fitted")
                    continue
                cell = f"{c['value']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]"
                spread = m["runs"].get("repeats", {}).get(d, {}).get(o)
                if spread and spread["n"] > 1:
                    cell += f" sd {spread['sd']:.3f}"
                cells.append(cell)
            pos = m["observations"][o]["positives"]
            print(f"| {o} | {pos} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
