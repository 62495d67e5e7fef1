#!/usr/bin/env python3
"""Compare `radfm dicom decode --stage raw` with pydicom on every file of a folder.

Usage: python tools/compare_pydicom.py [--radfm target/release/radfm] DIR [DIR...]

Needs: pydicom>=3, numpy, pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle.
Lossless transfer syntaxes must match exactly; lossy JPEG / JPEG 2000 / JPEG-LS near-lossless
within a max abs difference of 3. Prints one line per file and a summary; exits 1 on any failure.
"""
import argparse, glob, os, subprocess, sys, tempfile, warnings

import numpy as np
import pydicom

warnings.filterwarnings("ignore")
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91",
         "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.203"}


def pydicom_4d(path):
    note = None
    try:
        ds = pydicom.dcmread(path)
    except Exception:
        # no preamble / meta group: pydicom reads it only with force=True
        ds = pydicom.dcmread(path, force=True)
        note = "pydicom needs force=True"
        if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta = pydicom.dataset.FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    a = ds.pixel_array
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    rows, cols = int(ds.Rows), int(ds.Columns)
    return a.reshape(nf, rows, cols, spp), ds, note


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radfm", default="target/release/radfm")
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    files = sorted(f for d in args.dirs for f in glob.glob(os.path.join(d, "**", "*"), recursive=True)
                   if os.path.isfile(f) and not f.endswith((".md", ".npy", ".json")))
    ok = fail = ours_only = skipped = 0
    tmp = tempfile.mkdtemp()
    for f in files:
        name = os.path.relpath(f)
        try:
            ref, ds, note = pydicom_4d(f)
        except Exception as e:  # pydicom cannot decode
            ref, ds, note = None, None, f"pydicom fails: {type(e).__name__}: {str(e)[:60]}"
        has_pixels = ds is not None and "PixelData" in ds
        out = os.path.join(tmp, "x.npy")
        r = subprocess.run([args.radfm, "dicom", "decode", f, "--stage", "raw", "--out", out],
                           capture_output=True, text=True)
        ours = np.load(out) if r.returncode == 0 else None
        if os.path.exists(out):
            os.remove(out)
        if ref is None:
            if ours is not None:
                ours_only += 1
                print(f"OURS-ONLY {name}: we decode {ours.shape} {ours.dtype}; {note}")
            elif not has_pixels and ds is not None:
                skipped += 1
                print(f"SKIP      {name}: no pixel data ({r.stderr.strip()[:80]})")
            else:
                skipped += 1
                print(f"BOTH-FAIL {name}: {note}; radfm: {r.stderr.strip()[:100]}")
            continue
        if ours is None:
            fail += 1
            print(f"FAIL      {name}: radfm failed: {r.stderr.strip()[:160]}")
            continue
        ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
        if ours.shape != ref.shape:
            fail += 1
            print(f"FAIL      {name}: shape {ours.shape} vs pydicom {ref.shape}")
            continue
        diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64)).max() if ref.size else 0
        tol = 3 if ts in LOSSY else 0
        dtype_ok = ours.dtype.kind == ref.dtype.kind and ours.dtype.itemsize == ref.dtype.itemsize
        if diff <= tol and dtype_ok:
            ok += 1
            print(f"OK        {name}: {ts} {ours.shape} {ours.dtype} max|diff|={diff} (tol {tol})" + (f" [{note}]" if note else ""))
        else:
            fail += 1
            extra = ""
            if ts in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
                # libjpeg (pylibjpeg) and libjpeg-turbo (Pillow) upsample chroma differently
                try:
                    alt = pydicom.pixels.pixel_array(ds, decoding_plugin="pillow").reshape(ref.shape)
                    d2 = np.abs(ours.astype(np.int64) - alt.astype(np.int64))
                    extra = f"; vs pydicom's pillow (libjpeg-turbo) plugin: max|diff|={d2.max()}"
                    d1 = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
                    extra += f"; {(d1 > tol).sum()} of {d1.size} samples over tol vs pylibjpeg"
                except Exception as e:
                    extra = f"; pillow plugin unavailable: {e}"
            print(f"FAIL      {name}: {ts} max|diff|={diff} (tol {tol}) dtype {ours.dtype} vs {ref.dtype}{extra}")
    print(f"\n{ok} match, {fail} fail, {ours_only} decoded by radfm only, {skipped} skipped (no pixels / both fail)")
    sys.exit(1 if fail else 0)


if __name__ == "__main__":
    main()
