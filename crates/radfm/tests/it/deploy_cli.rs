//! Deployment end to end: a classifier exported by `radfm probe --export`,
//! then `predict`, `sr`, `card`, `verify` (and a tampered copy), `serve` on a
//! real socket, and `pacs sync` against a real Orthanc (Debian's `orthanc`
//! and `orthanc-dicomweb`) started on loopback ports with a temporary
//! configuration, twice, after an abort between the store and its record,
//! and after a kill -9.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use radfm_dicom::sr::read::{content, Item, Value};

use crate::adapt_cli::{dataset, model};
use crate::common::{fails, free_port, http, jsonl, ok, radfm};

struct Fixture {
    _tmp: tempfile::TempDir,
    /// the synthetic archive's DICOM files (with their synthetic PHI)
    dicom: PathBuf,
    /// the exported classifier directory
    model: PathBuf,
    /// `radfm predict` over the archive: id -> line
    predictions: BTreeMap<String, serde_json::Value>,
}

/// One classifier for every test here: a small archive, ingested and split,
/// embedded with the committed tiny DINOv2, probed and exported.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let (ds, _) = dataset(tmp.path(), 12);
        let m = model(tmp.path(), true);
        let emb = tmp.path().join("emb");
        ok(radfm()
            .args(["embed", "--model"])
            .arg(&m)
            .arg("--data")
            .arg(&ds)
            .arg("--out")
            .arg(&emb)
            .args(["--split", "all", "--quiet"]));
        let cls = tmp.path().join("classifier");
        ok(radfm()
            .args(["probe", "--embeddings"])
            .arg(&emb)
            .arg("--out")
            .arg(tmp.path().join("probe"))
            .args(["--standardize", "--C", "1", "--export"])
            .arg(&cls)
            .arg("--model")
            .arg(&m));
        let dicom = tmp.path().join("archive/dicom");
        let out = tmp.path().join("pred.jsonl");
        ok(radfm()
            .args(["predict", "--model"])
            .arg(&cls)
            .arg("--input")
            .arg(&dicom)
            .arg("--out")
            .arg(&out)
            .args(["--jobs", "2", "--quiet"]));
        let predictions = jsonl(&out)
            .into_iter()
            .map(|l| (l["id"].as_str().unwrap().to_string(), l))
            .collect();
        Fixture {
            dicom,
            model: cls,
            predictions,
            _tmp: tmp,
        }
    })
}

fn dicom_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| {
            let b = std::fs::read(p).unwrap();
            b.len() > 132 && &b[128..132] == b"DICM"
        })
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn info(bytes: &[u8]) -> radfm_dicom::DicomInfo {
    radfm_dicom::DicomInfo::from_dataset(&radfm_dicom::read::parse(bytes).unwrap().dataset)
}

/// One observation's results in an SR.
#[derive(Debug, PartialEq)]
struct Reading {
    present: bool,
    probability: f64,
    threshold: f64,
}

/// An SR's results: source SOP Instance UID -> observation -> reading,
/// read with radfm's own SR reader, every observation found by its
/// verbatim CheXpert name.
fn readings(sr: &[u8]) -> BTreeMap<String, BTreeMap<String, Reading>> {
    let file = radfm_dicom::read::parse(sr).unwrap();
    let root = content(&file.dataset).unwrap();
    let meas = root
        .child("Imaging Measurements")
        .expect("Imaging Measurements");
    let mut out = BTreeMap::new();
    for g in meas.children_named("Measurement Group") {
        let Value::Image { instance, .. } = &g.child("Source of Measurement").unwrap().value else {
            panic!("no source image")
        };
        let mut obs = BTreeMap::new();
        for q in g.children.iter().filter(|c| c.value_type == "CODE") {
            let Some(name) = q.child("CheXpert observation") else {
                continue;
            };
            let Value::Text(name) = &name.value else {
                panic!()
            };
            let Value::Code(v) = &q.value else { panic!() };
            let Value::Num { value: t, .. } = q.child("Operating point").unwrap().value else {
                panic!()
            };
            let num: Vec<&Item> = g
                .children
                .iter()
                .filter(|c| c.value_type == "NUM" && c.concept == q.concept)
                .collect();
            assert_eq!(num.len(), 1, "{name}: one probability");
            let Value::Num { value: p, .. } = num[0].value else {
                panic!()
            };
            assert!(matches!(v.meaning.as_str(), "Present" | "Absent"), "{v:?}");
            obs.insert(
                name.clone(),
                Reading {
                    present: v.meaning == "Present",
                    probability: p,
                    threshold: t,
                },
            );
        }
        out.insert(instance.clone(), obs);
    }
    out
}

/// dciodvfy's errors for an SR (none expected).
fn dciodvfy_errors(sr: &[u8]) -> Vec<String> {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("sr.dcm");
    std::fs::write(&p, sr).unwrap();
    let out = Command::new("dciodvfy")
        .arg(&p)
        .output()
        .expect("dciodvfy runs (apt-get install dicom3tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Comprehensive3DSR"), "{text}");
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

/// The SR's readings agree with `radfm predict` exactly, and each finding is
/// present exactly when its probability reaches the model's operating point.
fn check_against_predict(sr: &[u8], f: &Fixture, thresholds: &BTreeMap<String, f64>) {
    for (sop, obs) in readings(sr) {
        let want = &f.predictions[&sop]["scores"];
        assert_eq!(obs.len(), thresholds.len());
        for (o, r) in obs {
            assert_eq!(r.probability, want[&o].as_f64().unwrap(), "{sop} {o}");
            assert_eq!(r.threshold, thresholds[&o], "{o}");
            assert_eq!(r.present, r.probability >= r.threshold, "{o}");
        }
    }
}

fn thresholds(model: &Path) -> BTreeMap<String, f64> {
    let card: serde_json::Value = serde_json::from_str(&ok_stdout(
        radfm().args(["card", "--json", "--model"]).arg(model),
    ))
    .unwrap();
    card["observations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(o, v)| (o.clone(), v["threshold"].as_f64().unwrap()))
        .collect()
}

fn ok_stdout(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn predict_sr_card_and_verify_on_an_exported_classifier() {
    let f = fixture();
    let files = dicom_files(&f.dicom);
    // every image of the archive, by its SOP Instance UID, scores in [0, 1]
    assert_eq!(f.predictions.len(), files.len());
    for file in &files {
        let sop = info(&std::fs::read(file).unwrap())
            .sop_instance_uid
            .unwrap();
        let scores = f.predictions[&sop]["scores"].as_object().unwrap();
        assert!(!scores.is_empty());
        assert!(scores
            .values()
            .all(|p| (0.0..=1.0).contains(&p.as_f64().unwrap())));
    }
    // found by content: a text file and a broken file among the images; the
    // broken one is reported with its reason and the rest go on
    let t = tempfile::tempdir().unwrap();
    let mixed = t.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(&files[0], mixed.join("image-without-extension")).unwrap();
    std::fs::write(mixed.join("notes.txt"), "not an image").unwrap();
    let b = std::fs::read(&files[1]).unwrap();
    std::fs::write(mixed.join("truncated.dcm"), &b[..b.len() / 2]).unwrap();
    let out = t.path().join("p.jsonl");
    let err = ok(radfm()
        .args(["predict", "--model"])
        .arg(&f.model)
        .arg("--input")
        .arg(&mixed)
        .arg(&files[2])
        .arg("--out")
        .arg(&out)
        .arg("--quiet"));
    let lines = jsonl(&out);
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        err.contains("truncated.dcm") && !err.contains("notes.txt"),
        "{err}"
    );
    assert!(
        err.contains("2 images scored, 1 files could not be"),
        "{err}"
    );
    for l in &lines {
        assert_eq!(l, &f.predictions[l["id"].as_str().unwrap()], "same scores");
    }

    // the card: the operating points chosen on validation
    let th = thresholds(&f.model);
    assert!(th.contains_key("Pleural Effusion"), "{th:?}");
    let card: serde_json::Value = serde_json::from_str(&ok_stdout(
        radfm().args(["card", "--json", "--model"]).arg(&f.model),
    ))
    .unwrap();
    assert_eq!(card["sha256"].as_str().unwrap().len(), 64);
    let eff = &card["observations"]["Pleural Effusion"];
    assert!(
        eff["chosen_by"].as_str().unwrap().contains("Youden"),
        "{eff}"
    );
    let text = ok_stdout(radfm().args(["card", "--model"]).arg(&f.model));
    assert!(
        text.contains("Pleural Effusion") && text.contains("intended use"),
        "{text}"
    );

    // the SR of one image: valid, and its content equal to predict's
    let sr = t.path().join("sr.dcm");
    ok(radfm()
        .args(["sr", "--model"])
        .arg(&f.model)
        .arg("--input")
        .arg(&files[0])
        .arg("--out")
        .arg(&sr));
    let bytes = std::fs::read(&sr).unwrap();
    let r = readings(&bytes);
    assert_eq!(r.len(), 1);
    check_against_predict(&bytes, f, &th);
    let src = info(&std::fs::read(&files[0]).unwrap());
    let got = info(&bytes);
    assert_eq!(
        got.patient_id, src.patient_id,
        "patient copied from the source"
    );
    assert_eq!(got.study_instance_uid, src.study_instance_uid);
    assert_ne!(
        got.series_instance_uid, src.series_instance_uid,
        "a new series"
    );
    assert_eq!(got.modality.as_deref(), Some("SR"));
    // a file without pixels is refused with the reason
    let e = fails(
        radfm()
            .args(["sr", "--model"])
            .arg(&f.model)
            .arg("--input")
            .arg(mixed.join("notes.txt"))
            .arg("--out")
            .arg(t.path().join("x.dcm")),
    );
    assert!(
        e.contains("notes.txt") && e.contains("not readable as DICOM"),
        "{e}"
    );

    // verify: passes as exported
    let v = ok_stdout(radfm().args(["verify", "--model"]).arg(&f.model));
    assert!(v.starts_with("verified:"), "{v}");
    // a copy with one weight changed fails, naming the file and the outputs
    let bad = t.path().join("tampered");
    copy_dir(&f.model, &bad);
    let w = bad.join("encoder/model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let at = bytes.len() - 64;
    bytes[at] ^= 0x40;
    std::fs::write(&w, bytes).unwrap();
    let e = fails(radfm().args(["verify", "--model"]).arg(&bad));
    assert!(
        e.contains("encoder/model.safetensors: sha256") && e.contains("differs from the manifest"),
        "{e}"
    );
    assert!(e.contains("verification failed: 1 files differ"), "{e}");
    // a changed head moves the outputs, and verify says by how much
    let bad2 = t.path().join("tampered-head");
    copy_dir(&f.model, &bad2);
    let cj = bad2.join("classifier.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cj).unwrap()).unwrap();
    let b0 = meta["observations"]["Pleural Effusion"]["intercept"]
        .as_f64()
        .unwrap();
    meta["observations"]["Pleural Effusion"]["intercept"] = serde_json::json!(b0 + 0.5);
    std::fs::write(&cj, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    let e = fails(radfm().args(["verify", "--model"]).arg(&bad2));
    assert!(e.contains("file classifier.json: sha256"), "{e}");
    // (an input whose probability is saturated near 0 or 1 may move less than the tolerance)
    assert!(
        e.contains(", Pleural Effusion: ") && e.contains("reference outputs differ"),
        "{e}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `radfm serve` on a free loopback port; its address once it listens.
fn serve(model: &Path, extra: &[&str]) -> (Child, String, std::thread::JoinHandle<String>) {
    let mut child = radfm()
        .args(["serve", "--model"])
        .arg(model)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "serve exited early");
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    (child, addr, rest)
}

fn sigterm(child: &Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn serve_scores_equal_predict_refuses_bad_input_and_stops_cleanly() {
    let f = fixture();
    let files = dicom_files(&f.dicom);
    let (mut child, addr, log) = serve(&f.model, &["--workers", "2"]);
    let (st, _, body) = http(&addr, "GET", "/healthz", &[], b"");
    assert_eq!((st, body.as_slice()), (200, b"ok\n".as_slice()));
    let (st, _, body) = http(&addr, "GET", "/v1/model", &[], b"");
    assert_eq!(st, 200);
    let card: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ct = [("Content-Type", "application/dicom")];
    for file in files.iter().take(4) {
        let (st, _, body) = http(
            &addr,
            "POST",
            "/v1/predict",
            &ct,
            &std::fs::read(file).unwrap(),
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let sop = v["sop_instance_uid"].as_str().unwrap();
        assert_eq!(
            v["scores"], f.predictions[sop]["scores"],
            "equal to predict's"
        );
        assert_eq!(v["model"]["sha256"], card["sha256"]);
    }
    let (st, h, sr) = http(
        &addr,
        "POST",
        "/v1/sr",
        &ct,
        &std::fs::read(&files[0]).unwrap(),
    );
    assert_eq!(st, 200);
    assert!(h
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/dicom"));
    check_against_predict(&sr, f, &thresholds(&f.model));
    let good = std::fs::read(&files[1]).unwrap();
    for (what, ct, body, want) in [
        (
            "a text file",
            "application/dicom",
            b"FINDINGS: clear.".to_vec(),
            422,
        ),
        ("empty", "application/dicom", vec![], 422),
        (
            "truncated",
            "application/dicom",
            good[..good.len() / 3].to_vec(),
            422,
        ),
        ("wrong type", "text/plain", good.clone(), 415),
    ] {
        let (st, _, b) = http(&addr, "POST", "/v1/predict", &[("Content-Type", ct)], &body);
        assert_eq!(st, want, "{what}: {}", String::from_utf8_lossy(&b));
    }
    let (st, _, m) = http(&addr, "GET", "/metrics", &[], b"");
    assert_eq!(st, 200);
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("radfm_requests_total{route=\"/v1/predict\",status=\"200\"} 4"),
        "{m}"
    );
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = log.join().unwrap();
    assert!(log.contains("stopped"), "{log}");
    // the log never holds a UID of the archive's
    for sop in f.predictions.keys() {
        assert!(!log.contains(sop.as_str()), "{log}");
    }

    // a non-loopback address needs a token, or the explicit waiver
    let e = fails(
        radfm()
            .args(["serve", "--model"])
            .arg(&f.model)
            .args(["--listen", "0.0.0.0:0"]),
    );
    assert!(
        e.contains("--token-file") && e.contains("--insecure-no-auth"),
        "{e}"
    );
    // with a token: 401 without it
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("token"), "tok-123\n").unwrap();
    let tf = t.path().join("token");
    let (mut child, addr, log) = serve(&f.model, &["--token-file", tf.to_str().unwrap()]);
    assert_eq!(http(&addr, "GET", "/v1/model", &[], b"").0, 401);
    assert_eq!(http(&addr, "GET", "/healthz", &[], b"").0, 200);
    let auth = [("Authorization", "Bearer tok-123")];
    assert_eq!(http(&addr, "GET", "/v1/model", &auth, b"").0, 200);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert!(!log.join().unwrap().contains("tok-123"));

    // dynamic batching: the same scores, to the last bits a batch may change
    let (mut child, addr, _log) = serve(&f.model, &["--batch", "4"]);
    let bodies: Vec<Vec<u8>> = files
        .iter()
        .take(6)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let answers: Vec<serde_json::Value> = std::thread::scope(|sc| {
        let hs: Vec<_> = bodies
            .iter()
            .map(|b| {
                let addr = addr.clone();
                sc.spawn(move || {
                    let (st, _, body) = http(&addr, "POST", "/v1/predict", &ct, b);
                    assert_eq!(st, 200);
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for v in answers {
        let want = &f.predictions[v["sop_instance_uid"].as_str().unwrap()]["scores"];
        for (o, p) in v["scores"].as_object().unwrap() {
            assert!(
                (p.as_f64().unwrap() - want[o].as_f64().unwrap()).abs() < 1e-6,
                "{o}"
            );
        }
    }
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// An Orthanc on free loopback ports with its DICOMweb plugin, storing in a
/// temporary directory; stopped by PID (SIGTERM) when dropped.
struct Orthanc {
    child: Child,
    http: String,
    _dir: tempfile::TempDir,
}

impl Orthanc {
    fn start() -> Orthanc {
        let dir = tempfile::tempdir().unwrap();
        let (hp, dp) = (free_port(), free_port());
        let cfg = serde_json::json!({
            "Name": "radfm-test",
            "StorageDirectory": dir.path().join("db"),
            "IndexDirectory": dir.path().join("db"),
            "HttpPort": hp,
            "DicomPort": dp,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
            "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
        });
        let cfg_path = dir.path().join("orthanc.json");
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let bin = if Path::new("/usr/sbin/Orthanc").is_file() {
            PathBuf::from("/usr/sbin/Orthanc")
        } else {
            PathBuf::from("Orthanc")
        };
        let child = Command::new(bin)
            .arg(&cfg_path)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("orthanc.log")).unwrap())
            .spawn()
            .expect("Orthanc starts (apt-get install orthanc orthanc-dicomweb)");
        let o = Orthanc {
            child,
            http: format!("127.0.0.1:{hp}"),
            _dir: dir,
        };
        let t0 = Instant::now();
        loop {
            if std::net::TcpStream::connect(&o.http).is_ok()
                && http(&o.http, "GET", "/system", &[], b"").0 == 200
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "Orthanc did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        o
    }

    fn dicomweb(&self) -> String {
        format!("http://{}/dicom-web", self.http)
    }

    fn upload(&self, files: &[PathBuf]) {
        for f in files {
            let (st, _, b) = http(
                &self.http,
                "POST",
                "/instances",
                &[("Content-Type", "application/dicom")],
                &std::fs::read(f).unwrap(),
            );
            assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        }
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        let (st, _, b) = http(&self.http, "GET", path, &[], b"");
        assert_eq!(st, 200, "{path}");
        serde_json::from_slice(&b).unwrap()
    }

    /// study UID -> the SR instances' files in it
    fn srs(&self) -> BTreeMap<String, Vec<Vec<u8>>> {
        let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for study in self.get_json("/studies").as_array().unwrap() {
            let s = self.get_json(&format!("/studies/{}", study.as_str().unwrap()));
            let uid = s["MainDicomTags"]["StudyInstanceUID"]
                .as_str()
                .unwrap()
                .to_string();
            let e = out.entry(uid).or_default();
            for series in s["Series"].as_array().unwrap() {
                let se = self.get_json(&format!("/series/{}", series.as_str().unwrap()));
                if se["MainDicomTags"]["Modality"] == "SR" {
                    for i in se["Instances"].as_array().unwrap() {
                        let (st, _, b) = http(
                            &self.http,
                            "GET",
                            &format!("/instances/{}/file", i.as_str().unwrap()),
                            &[],
                            b"",
                        );
                        assert_eq!(st, 200);
                        e.push(b);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sync(o: &Orthanc, model: &Path, state: &Path) -> Command {
    let mut c = radfm();
    c.args(["pacs", "sync", "--dicomweb", &o.dicomweb(), "--model"])
        .arg(model)
        .arg("--state")
        .arg(state)
        .arg("--once");
    c
}

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// Exactly one SR per study, each valid, each with every image of its study
/// and predict's scores.
fn one_valid_sr_per_study(o: &Orthanc, f: &Fixture, studies: &BTreeSet<String>) {
    let srs = o.srs();
    assert_eq!(srs.keys().cloned().collect::<BTreeSet<_>>(), *studies);
    let th = thresholds(&f.model);
    for (study, list) in &srs {
        assert_eq!(list.len(), 1, "study {study}: {} SRs", list.len());
        let sr = &list[0];
        if cfg!(any(radfm_has_dciodvfy, radfm_ci)) {
            assert_eq!(dciodvfy_errors(sr), Vec::<String>::new());
        }
        assert_eq!(info(sr).study_instance_uid.as_deref(), Some(study.as_str()));
        check_against_predict(sr, f, &th);
        let images: BTreeSet<String> = readings(sr).into_keys().collect();
        let want: BTreeSet<String> = dicom_files(&f.dicom)
            .iter()
            .map(|p| info(&std::fs::read(p).unwrap()))
            .filter(|i| i.study_instance_uid.as_deref() == Some(study.as_str()))
            .map(|i| i.sop_instance_uid.unwrap())
            .collect();
        assert_eq!(images, want, "every image of the study");
    }
}

fn archive_studies(f: &Fixture) -> BTreeSet<String> {
    dicom_files(&f.dicom)
        .iter()
        .map(|p| info(&std::fs::read(p).unwrap()).study_instance_uid.unwrap())
        .collect()
}

#[test]
#[cfg_attr(
    not(any(radfm_has_orthanc, radfm_ci)),
    ignore = "needs Orthanc (apt-get install orthanc orthanc-dicomweb), absent here (CI fails without it)"
)]
fn pacs_sync_stores_one_sr_per_study_and_a_rerun_stores_none() {
    let f = fixture();
    let o = Orthanc::start();
    let files = dicom_files(&f.dicom);
    o.upload(&files);
    let studies = archive_studies(f);
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state.sqlite");
    let out = sync(&o, &f.model, &state).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r = report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["stored"], studies.len(), "{r}");
    assert_eq!(r["images"], files.len());
    one_valid_sr_per_study(&o, f, &studies);
    // the second run: nothing new
    let r = report(&ok_stdout(&mut sync(&o, &f.model, &state)));
    assert_eq!(
        (r["stored"].as_u64(), r["done_before"].as_u64()),
        (Some(0), Some(studies.len() as u64)),
        "{r}"
    );
    one_valid_sr_per_study(&o, f, &studies);
    // a lost state: the SRs are found on the server, none stored again
    let fresh = t.path().join("fresh.sqlite");
    let r = report(&ok_stdout(&mut sync(&o, &f.model, &fresh)));
    assert_eq!(r["found_on_server"], studies.len(), "{r}");
    assert_eq!(r["stored"], 0);
    one_valid_sr_per_study(&o, f, &studies);
    // neither the log nor the state holds the archive's UIDs
    let db = std::fs::read(&state).unwrap();
    let db = String::from_utf8_lossy(&db);
    for s in &studies {
        assert!(!err.contains(s.as_str()) && !db.contains(s.as_str()), "{s}");
    }
    for sop in f.predictions.keys() {
        assert!(!err.contains(sop.as_str()));
    }
}

#[test]
#[cfg_attr(
    not(any(radfm_has_orthanc, radfm_ci)),
    ignore = "needs Orthanc (apt-get install orthanc orthanc-dicomweb), absent here (CI fails without it)"
)]
fn pacs_sync_after_a_crash_or_kill_stores_no_second_sr() {
    let f = fixture();
    let studies = archive_studies(f);
    assert!(studies.len() >= 4, "{studies:?}");
    let t = tempfile::tempdir().unwrap();

    // the worst moment: the SR stored, the state not yet told
    let o = Orthanc::start();
    o.upload(&dicom_files(&f.dicom));
    let state = t.path().join("crash.sqlite");
    let out = sync(&o, &f.model, &state)
        .env("RADFM_SYNC_CRASH_AFTER_STORE", "2")
        .output()
        .unwrap();
    assert!(!out.status.success(), "it aborts after the second store");
    assert_eq!(o.srs().values().filter(|v| !v.is_empty()).count(), 2);
    let r = report(&ok_stdout(&mut sync(&o, &f.model, &state)));
    assert_eq!(
        r["found_on_server"], 1,
        "the uncertain store is looked up: {r}"
    );
    assert_eq!(r["done_before"], 1);
    assert_eq!(r["stored"], studies.len() - 2);
    one_valid_sr_per_study(&o, f, &studies);
    drop(o);

    // a kill -9 at a moment of the scheduler's choosing
    let o = Orthanc::start();
    o.upload(&dicom_files(&f.dicom));
    let state = t.path().join("kill.sqlite");
    let mut child = sync(&o, &f.model, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 || line.contains("SR of") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let before = o.srs().values().filter(|v| !v.is_empty()).count();
    // (if the kill came after the last store, the rerun must still add nothing)
    assert!(before >= 1, "{before} of {}", studies.len());
    let r = report(&ok_stdout(&mut sync(&o, &f.model, &state)));
    assert_eq!(
        r["stored"].as_u64().unwrap()
            + r["done_before"].as_u64().unwrap()
            + r["found_on_server"].as_u64().unwrap(),
        studies.len() as u64,
        "{r}"
    );
    one_valid_sr_per_study(&o, f, &studies);
}
