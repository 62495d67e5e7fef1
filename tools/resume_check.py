#!/usr/bin/env python3
"""Kill `radfm ingest` with SIGKILL mid-run (several times), resume it, and compare the result
with a clean run of the same input: same images (by SOP instance), identical pixels, no
duplicates, no partial shards. Uses only the standard library and numpy.

Usage: python tools/resume_check.py [--radfm target/release/radfm] [--kills 3] DIR...
"""
import argparse, hashlib, io, json, os, signal, sqlite3, subprocess, sys, tarfile, tempfile, time


def images(ds):
    """sop -> sha256 of pixels, from the shards the catalog references (the source of truth)."""
    out = {}
    shards = os.path.join(ds, "shards")
    try:
        names = [r[0] for r in sqlite3.connect(os.path.join(ds, "catalog.sqlite")).execute("SELECT DISTINCT shard FROM images")]
    except Exception:
        names = []
    for name in sorted(names):
        with tarfile.open(os.path.join(shards, name)) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for n, m in members.items():
                if n.endswith(".json"):
                    meta = json.load(tar.extractfile(m))["meta"]
                    pix = tar.extractfile(members[n[:-5] + ".npy"]).read()
                    assert meta["sop_uid"] not in out, f"duplicate {meta['sop_uid']}"
                    out[meta["sop_uid"]] = hashlib.sha256(pix).hexdigest()
    return out


def committed(ds):
    try:
        return sqlite3.connect(os.path.join(ds, "catalog.sqlite")).execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except Exception:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    key = os.path.join(tmp, "k.deid-key")
    cmd = lambda out: [a.radfm, "ingest", *a.dirs, "--out", out, "--key", key, "--quiet", "--allow-burned-in",
                       "--shard-size", "1", "--jobs", "1"]
    clean = os.path.join(tmp, "clean")
    t = time.time(); subprocess.run(cmd(clean), check=True, stderr=subprocess.DEVNULL); t_clean = time.time() - t
    want = images(clean)
    res = os.path.join(tmp, "resumed")
    kills = 0
    for i in range(a.kills):
        p = subprocess.Popen(cmd(res), stderr=subprocess.DEVNULL)
        time.sleep(t_clean * (i + 1) / (a.kills + 2))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL); kills += 1
        p.wait()
        n = committed(res)
        got = images(res)
        assert len(got) == n, "catalog and shards disagree after a kill"
        print(f"kill {i + 1}: {n}/{len(want)} images committed, all readable")
    subprocess.run(cmd(res), check=True, stderr=subprocess.DEVNULL)
    got = images(res)
    referenced = {r[0] for r in sqlite3.connect(os.path.join(res, "catalog.sqlite")).execute("SELECT DISTINCT shard FROM images")}
    left = [f for f in os.listdir(os.path.join(res, "shards")) if f not in referenced]
    # the datasets name their inputs by keys; the private maps beside them have the paths
    log = open(res + ".sources.jsonl").read().splitlines()
    log_clean = open(clean + ".sources.jsonl").read().splitlines()
    strip = lambda lines: sorted((json.loads(l)["path"], json.loads(l)["status"]) for l in lines)
    print(f"clean run: {len(want)} images in {t_clean:.1f} s; after {kills} SIGKILLs and a resume: {len(got)} images")
    print(f"identical SOP set and pixels: {got == want}; temporary or orphan shards left: {len(left)}; "
          f"log lines {len(log)} vs {len(log_clean)}, same statuses: {strip(log) == strip(log_clean)}")
    return 0 if got == want and not left and strip(log) == strip(log_clean) else 1


if __name__ == "__main__":
    sys.exit(main())
