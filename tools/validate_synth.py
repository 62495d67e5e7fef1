#!/usr/bin/env python3
"""Validate a `radfm synth` archive with the reference tools.

    python3 tools/validate_synth.py ARCHIVE_DIR

- pydicom reads every file and decodes its pixels; any warning it emits counts.
- dcmtk's `dcmdump` parses every file; anything it prints on stderr counts.
- dicom3tools' `dciodvfy` checks every file against its IOD (CR or DX). dciodvfy cannot
  read the Deflated Explicit VR Little Endian transfer syntax, so deflated files are first
  inflated with dcmtk's `dcmconv +te` (same data set, explicit VR little endian).

Needs: pip install pydicom numpy; apt-get install dcmtk dicom3tools.
"""
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pydicom

DEFLATED = "1.2.840.10008.1.2.1.99"


def main(root):
    files = sorted(Path(root, "dicom").rglob("*.dcm"))
    counts = {"files": len(files), "pydicom_fail": 0, "pydicom_warnings": 0, "dcmdump_messages": 0,
              "dciodvfy_errors": 0, "dciodvfy_warnings": 0, "inflated_for_dciodvfy": 0}
    tmp = Path(tempfile.mkdtemp()) / "inflated.dcm"
    warning_kinds = {}
    for f in files:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                ds = pydicom.dcmread(f)
                ds.pixel_array
                ts = str(ds.file_meta.TransferSyntaxUID)
            except Exception as e:  # noqa: BLE001
                counts["pydicom_fail"] += 1
                print(f"pydicom failed on {f}: {e}")
                continue
            counts["pydicom_warnings"] += len(w)
        r = subprocess.run(["dcmdump", str(f)], capture_output=True, text=True)
        counts["dcmdump_messages"] += len([l for l in r.stderr.splitlines() if l.strip()])
        target = f
        if ts == DEFLATED:
            subprocess.run(["dcmconv", "+te", str(f), str(tmp)], check=True)
            target = tmp
            counts["inflated_for_dciodvfy"] += 1
        r = subprocess.run(["dciodvfy", str(target)], capture_output=True, text=True)
        for line in (r.stdout + r.stderr).splitlines():
            if line.startswith("Error"):
                counts["dciodvfy_errors"] += 1
                print(f"{f}: {line}")
            elif line.startswith("Warning"):
                counts["dciodvfy_warnings"] += 1
                warning_kinds[line] = warning_kinds.get(line, 0) + 1
    for k, v in counts.items():
        print(f"{k:24s} {v}")
    print("dciodvfy warning kinds:")
    for k, v in sorted(warning_kinds.items(), key=lambda x: -x[1]):
        print(f"  {v:6d}  {k}")


if __name__ == "__main__":
    main(sys.argv[1])
