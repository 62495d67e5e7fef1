"""Check a radfm SR with the peers: pydicom reads it, highdicom parses its TID 1500
content, and dciodvfy (Debian dicom3tools) validates it against the IOD.

    python -m venv v && v/bin/pip install pydicom highdicom
    v/bin/python tools/sr_check.py crates/radfm-dicom/tests/data/sr/example-sr.dcm \
        > crates/radfm-dicom/tests/data/sr/example-sr.peers.json

The output (committed beside the SR) lists what highdicom found, so the Rust test
can check that radfm writes what the peers read, without Python at test time.
"""

import json
import shutil
import subprocess
import sys

import highdicom as hd
import pydicom


def code(c):
    return {"value": c.value, "scheme": c.scheme_designator, "meaning": c.meaning}


def main(path):
    ds = pydicom.dcmread(path)
    out = {
        "pydicom": pydicom.__version__,
        "highdicom": hd.__version__,
        "sop_class": str(ds.SOPClassUID),
        "patient_id": str(ds.PatientID),
        "study_uid": str(ds.StudyInstanceUID),
    }
    sr = hd.sr.srread(path)
    out["highdicom_class"] = type(sr).__name__
    content = sr.content
    out["observer_type"] = code(content.get_observer_contexts()[0].observer_type)
    out["device_name"] = content.get_observer_contexts()[0].observer_identifying_attributes.name
    groups = []
    for g in content.get_image_measurement_groups():
        src = g.source_images
        groups.append(
            {
                "tracking_identifier": g.tracking_identifier,
                "tracking_uid": str(g.tracking_uid),
                "source_images": [str(s.referenced_sop_instance_uid) for s in src],
                "measurements": [
                    {
                        "name": code(m.name),
                        "value": float(m.value),
                        "unit": code(m.unit),
                    }
                    for m in g.get_measurements()
                ],
                "qualitative_evaluations": [
                    {"name": code(q.name), "value": code(q.value)}
                    for q in g.get_qualitative_evaluations()
                ],
            }
        )
    out["measurement_groups"] = groups
    if shutil.which("dciodvfy"):
        p = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
        lines = (p.stdout + p.stderr).splitlines()
        out["dciodvfy"] = {
            "errors": [l for l in lines if l.startswith("Error")],
            # each distinct warning once, with how often it came
            "warnings": {
                w: sum(1 for l in lines if l == w)
                for w in sorted({l for l in lines if l.startswith("Warning")})
            },
        }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
