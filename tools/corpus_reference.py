#!/usr/bin/env python3
"""Record pydicom's raw pixel values for every file of the shared DICOM corpus, so that
`cargo test` can check radfm against pydicom on the whole corpus without Python.

Usage: python tools/corpus_reference.py [CORPUS_DIR]   (default ../shared/data/dicom-corpus)
Writes crates/radfm-dicom/tests/fixtures/corpus_reference.json:
  {file: {shape, dtype, sha256 | null, lossy, min, max, mean}} or {file: {"pydicom_error": ...}}
sha256 is of the little-endian values of pixel_array reshaped to (frames, rows, cols, samples);
for lossy transfer syntaxes only shape, dtype and summary statistics are recorded.
"""
import glob, hashlib, json, os, sys, warnings

import numpy as np
import pydicom

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data", "dicom-corpus")
OUT = os.path.join(HERE, "..", "crates", "radfm-dicom", "tests", "fixtures", "corpus_reference.json")
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"}

ref = {}
for f in sorted(glob.glob(os.path.join(CORPUS, "*.dcm"))):
    name = os.path.basename(f)
    try:
        try:
            ds = pydicom.dcmread(f)
        except Exception:
            ds = pydicom.dcmread(f, force=True)
            ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
            ds.file_meta.setdefault("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian)
            if "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        a = ds.pixel_array
    except Exception as e:
        ref[name] = {"pydicom_error": f"{type(e).__name__}: {e}"[:200]}
        continue
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    a = a.reshape(nf, int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)))
    le = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    lossy = str(ds.file_meta.TransferSyntaxUID) in LOSSY
    ref[name] = {"shape": list(a.shape), "dtype": le.dtype.str, "lossy": lossy,
                 "sha256": None if lossy else hashlib.sha256(le.tobytes()).hexdigest(),
                 "min": float(a.min()), "max": float(a.max()), "mean": float(a.mean())}
json.dump(ref, open(OUT, "w"), indent=1, sort_keys=True)
print(f"{len(ref)} files -> {OUT}")
