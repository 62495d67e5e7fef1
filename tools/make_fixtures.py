#!/usr/bin/env python3
"""Build the committed DICOM test fixtures and their pydicom reference values.

Usage: python tools/make_fixtures.py [CORPUS_DIR]   (default ../shared/data/dicom-corpus)
Needs: pydicom>=3, numpy, pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle,
       and dcmtk (dcmcjpeg, dcmcjpls, dcmconv) to make the encodings the corpus lacks.
Writes crates/radfm-dicom/tests/fixtures/*.dcm and reference.json:
  {file: {shape (frames, rows, cols, samples), dtype, sha256 of the little-endian values,
          min, max, tol, npy (full reference array, for lossy files)}}
"""
import hashlib, json, os, shutil, subprocess, sys, tempfile

import numpy as np
import pydicom

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "radfm-dicom", "tests", "fixtures")
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data", "dicom-corpus")

COPY = [  # small real files covering the transfer syntaxes and pixel layouts
    "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm", "emri_small_RLE.dcm",
    "emri_small_big_endian.dcm", "SC_ybr_full_uncompressed.dcm", "SC_rgb_expb_32bit.dcm",
    "color-pl.dcm", "liver_expb.dcm",
]
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"}


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in COPY:
        shutil.copy(os.path.join(CORPUS, f), os.path.join(OUT, f))
        os.chmod(os.path.join(OUT, f), 0o644)
    emri = os.path.join(CORPUS, "emri_small.dcm")
    run("dcmcjpeg", "+ee", emri, os.path.join(OUT, "jpeg12_extended.dcm"))
    run("dcmcjpls", "+en", "--max-deviation", "2", emri, os.path.join(OUT, "jpegls_near_lossless.dcm"))
    run("dcmcjpeg", "+el", emri, os.path.join(OUT, "jpeg_lossless_sv1.dcm"))
    run("dcmconv", "+td", emri, os.path.join(OUT, "deflated.dcm"))
    run("dcmcjpeg", "+eb", os.path.join(CORPUS, "SC_rgb.dcm"), os.path.join(OUT, "jpeg8_baseline_ybr422.dcm"))
    # a 600x800 ultrasound frame with burned-in text, as baseline 4:2:2: sharp chroma edges
    # exercise the reference decoder's upsampling exactly (its full reference array is large,
    # so it is stored deflated: raw little-endian samples, zlib without header)
    run("dcmcjpeg", "+eb", os.path.join(CORPUS, "OBXXXX1A.dcm"), os.path.join(OUT, "jpeg8_baseline_us422.dcm"))
    # no preamble, no meta group: data set only, implicit VR little endian
    tmp = tempfile.mkdtemp()
    run("dcmconv", "+ti", emri, os.path.join(tmp, "implicit.dcm"))
    run("dcmconv", "-F", "+ti", emri, os.path.join(OUT, "no_meta_implicit.dcm"))
    # implicit VR body under an explicit VR declaration in the meta group
    ds = pydicom.dcmread(os.path.join(tmp, "implicit.dcm"))
    raw = open(os.path.join(tmp, "implicit.dcm"), "rb").read()
    old = b"1.2.840.10008.1.2\x00"
    new = b"1.2.840.10008.1.2.1\x00"
    i = raw.index(old)
    assert raw[i - 2:i] == len(old).to_bytes(2, "little")
    body = raw[:i - 2] + len(new).to_bytes(2, "little") + new + raw[i + len(old):]
    # fix (0002,0000) group length
    gl = body.index(b"\x02\x00\x00\x00UL\x04\x00")
    glen = int.from_bytes(body[gl + 8:gl + 12], "little") + len(new) - len(old)
    body = body[:gl + 8] + glen.to_bytes(4, "little") + body[gl + 12:]
    open(os.path.join(OUT, "misdeclared_explicit.dcm"), "wb").write(body)

    # a small PALETTE COLOR image: the top-left 64x96 of an ultrasound frame
    ds = pydicom.dcmread(os.path.join(CORPUS, "OBXXXX1A.dcm"))
    crop = np.ascontiguousarray(ds.pixel_array[200:264, 300:396])
    ds.Rows, ds.Columns = crop.shape
    ds.PixelData = crop.tobytes()
    ds.save_as(os.path.join(OUT, "palette_small.dcm"), enforce_file_format=True)

    ref = {}
    for f in sorted(os.listdir(OUT)):
        if not f.endswith(".dcm"):
            continue
        p = os.path.join(OUT, f)
        try:
            ds = pydicom.dcmread(p)
        except Exception:
            ds = pydicom.dcmread(p, force=True)
            if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta = pydicom.dataset.FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        if f == "misdeclared_explicit.dcm":
            ds = pydicom.dcmread(os.path.join(tmp, "implicit.dcm"))  # pydicom's view of the real encoding
        a = ds.pixel_array
        nf = int(ds.get("NumberOfFrames", 1) or 1)
        a = a.reshape(nf, int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)))
        le = a.astype(a.dtype.newbyteorder("<"))
        ts = str(ds.file_meta.TransferSyntaxUID)
        entry = {"shape": list(a.shape), "dtype": le.dtype.str.replace("=", "<"),
                 "sha256": hashlib.sha256(np.ascontiguousarray(le).tobytes()).hexdigest(),
                 "min": int(a.min()), "max": int(a.max()), "tol": 3 if ts in LOSSY else 0}
        if ts in LOSSY and le.nbytes > 200_000:
            import zlib
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            raw = f[:-4] + ".ref.deflate"
            open(os.path.join(OUT, raw), "wb").write(c.compress(np.ascontiguousarray(le).tobytes()) + c.flush())
            entry["deflated"] = raw
        elif ts in LOSSY:
            npy = f[:-4] + ".ref.npy"
            np.save(os.path.join(OUT, npy), np.ascontiguousarray(le))
            entry["npy"] = npy
        if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut
            bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
            disp = (apply_color_lut(ds.pixel_array, ds) / float(2 ** bits - 1)).astype("<f4")
            npy = f[:-4] + ".display.npy"
            np.save(os.path.join(OUT, npy), disp.reshape(a.shape[:3] + (3,)))
            entry["display_npy"] = npy
        ref[f] = entry
        print(f, entry["shape"], entry["dtype"], ts)
    json.dump(ref, open(os.path.join(OUT, "reference.json"), "w"), indent=1, sort_keys=True)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
