//! The streaming reader and the weak labels stored at ingest.

use std::path::{Path, PathBuf};

use radfm_core::observation::Observation;
use radfm_data::catalog::Catalog;
use radfm_data::ingest::{ingest, IngestConfig, NoReporter};
use radfm_data::reader::Reader;
use radfm_data::testdata;

fn dataset(tmp: &Path, n: usize) -> PathBuf {
    let input = tmp.join("in");
    std::fs::create_dir(&input).unwrap();
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../radfm-dicom/tests/fixtures/deflated.dcm");
    let mut reports = String::new();
    for i in 0..n {
        testdata::write_variant(&template, &input.join(format!("img{i}.dcm")), i, true).unwrap();
        let acc = &testdata::phi_tokens(i)[14];
        // every other report finds an effusion
        let text = if i % 2 == 0 {
            testdata::phi_report(i)
        } else {
            "INDICATION: dyspnea. FINDINGS: Small left pleural effusion. No pneumothorax. \
             IMPRESSION: Effusion."
                .to_string()
        };
        reports.push_str(
            &serde_json::json!({"accession_number": acc, "study_instance_uid": "", "text": text})
                .to_string(),
        );
        reports.push('\n');
    }
    std::fs::write(tmp.join("reports.jsonl"), reports).unwrap();
    let out = tmp.join("ds");
    let cfg = IngestConfig {
        inputs: vec![input],
        out: out.clone(),
        reports: Some(tmp.join("reports.jsonl")),
        size: 32,
        deid: true,
        allow_burned_in: false,
        surrogates: false,
        jobs: 2,
        key_path: radfm_data::key::default_path(&out),
        site: None,
        shard_size: 3,
    };
    let s = ingest(&cfg, &NoReporter).unwrap();
    assert_eq!((s.images, s.reports_linked), (n, n), "{s:?}");
    out
}

fn label_of(r: &radfm_data::reader::Record, o: Observation) -> Option<i8> {
    r.labels
        .as_ref()
        .expect("labelled")
        .iter()
        .find(|l| l.0 == o)
        .map(|l| l.1)
}

#[test]
fn ingest_stores_weak_labels_and_the_reader_streams_them_with_the_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 7;
    let ds = dataset(tmp.path(), n);
    let cat = Catalog::open(&ds).unwrap();
    let labeler = cat.meta("labeler").unwrap().expect("labeler recorded");
    assert!(labeler.starts_with("radfm-report "), "{labeler}");
    assert_eq!(
        cat.meta("label_hedges").unwrap().as_deref(),
        Some("probable")
    );
    // each label row's evidence is a span of the stored text that names it
    let mut st = cat
        .conn
        .prepare(
            "SELECT r.text, l.observation, l.evidence_start, l.evidence_end
             FROM labels l JOIN reports r ON r.study_uid = l.study_uid",
        )
        .unwrap();
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.len() >= 2 * n, "{} label rows", rows.len());
    // No Finding follows from the others and has no mention of its own
    for (_, o, a, b) in &rows {
        assert_eq!(
            a.is_some() && b.is_some(),
            o != "No Finding",
            "{o}: {a:?} {b:?}"
        );
    }
    let effusion_spans: Vec<&str> = rows
        .iter()
        .filter(|r| r.1 == "Pleural Effusion")
        .map(|r| &r.0[r.2.unwrap() as usize..r.3.unwrap() as usize])
        .collect();
    assert_eq!(effusion_spans.len(), n);
    assert!(
        effusion_spans
            .iter()
            .all(|s| s.to_lowercase().contains("effusion")),
        "{effusion_spans:?}"
    );

    let reader = Reader::open(&ds).unwrap();
    let recs = reader.records();
    assert_eq!(recs.len(), n);
    let positive = recs
        .iter()
        .filter(|r| label_of(r, Observation::PleuralEffusion) == Some(1))
        .count();
    let negative = recs
        .iter()
        .filter(|r| label_of(r, Observation::PleuralEffusion) == Some(0))
        .count();
    assert_eq!((positive, negative), (n / 2, n - n / 2));
    assert!(recs
        .iter()
        .all(|r| label_of(r, Observation::Pneumothorax) == Some(0)));

    // batches of 3 over shards of 3: 3, 3, 1, in the catalog's order, each
    // image's values the stored uint16 times the sidecar's scale
    let mut sizes = Vec::new();
    let mut order = Vec::new();
    reader
        .stream::<radfm_data::DataError>(3, &mut |items| {
            sizes.push(items.len());
            for (i, px) in items {
                let px = px.expect("decoded");
                assert_eq!(px.shape[0], 1);
                assert_eq!(px.data.len(), px.shape.iter().product::<usize>());
                assert!(px.data.iter().all(|v| (0.0..=1.0).contains(v)));
                let max = px.data.iter().fold(0f32, |a, &b| a.max(b));
                assert!(max > 0.5, "display values, not raw counts: max {max}");
                order.push(i);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(order, (0..n).collect::<Vec<_>>());
}

#[test]
fn an_older_dataset_gets_its_labels_from_reports_label() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = dataset(tmp.path(), 4);
    let before: Vec<_> = Reader::open(&ds).unwrap().records().to_vec();
    {
        let cat = Catalog::open(&ds).unwrap();
        cat.conn
            .execute_batch("DELETE FROM labels; UPDATE reports SET labeled_by = NULL;")
            .unwrap();
    }
    assert!(Reader::open(&ds)
        .unwrap()
        .records()
        .iter()
        .all(|r| r.labels.is_none()));
    let cat = Catalog::open(&ds).unwrap();
    let mut calls = 0;
    let s = radfm_data::labels::label_dataset(&cat, false, &mut |_, _| calls += 1).unwrap();
    assert_eq!((s.labeled, s.current, s.relabeled), (4, 0, 0));
    assert!(calls >= 1);
    assert_eq!(Reader::open(&ds).unwrap().records(), &before[..]);
    // again: nothing to do; with all: everything, counted as relabelled
    let s = radfm_data::labels::label_dataset(&cat, false, &mut |_, _| {}).unwrap();
    assert_eq!((s.labeled, s.current), (0, 4));
    let s = radfm_data::labels::label_dataset(&cat, true, &mut |_, _| {}).unwrap();
    assert_eq!((s.labeled, s.relabeled), (4, 4));
}

#[test]
fn an_image_missing_from_its_shard_is_an_item_error_and_the_rest_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = dataset(tmp.path(), 4);
    {
        let cat = Catalog::open(&ds).unwrap();
        // point the first image at a shard that does not hold it
        let other: String = cat
            .conn
            .query_row(
                "SELECT shard FROM images ORDER BY key DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        cat.conn
            .execute(
                "UPDATE images SET shard = ?1 WHERE key = (SELECT MIN(key) FROM images)",
                [&other],
            )
            .unwrap();
    }
    let reader = Reader::open(&ds).unwrap();
    let mut ok = 0;
    let mut errors = Vec::new();
    reader
        .stream::<radfm_data::DataError>(8, &mut |items| {
            for (i, px) in items {
                match px {
                    Ok(_) => ok += 1,
                    Err(why) => errors.push((reader.records()[i].key.clone(), why)),
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ok, 3);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].1.contains(&errors[0].0) && errors[0].1.contains("is not in"),
        "{errors:?}"
    );
    assert!(Reader::open(&tmp.path().join("nothing")).is_err());
}

#[test]
fn the_frame_store_holds_every_readable_frame_preprocessed_and_is_reused() {
    use radfm_data::frames::FrameStore;
    use radfm_data::preprocess::Preprocess;
    let tmp = tempfile::tempdir().unwrap();
    let ds = dataset(tmp.path(), 5);
    {
        // the last image's member goes missing from its shard's point of view
        let cat = Catalog::open(&ds).unwrap();
        cat.conn
            .execute(
                "UPDATE images SET shard = (SELECT MIN(shard) FROM images)
                 WHERE key = (SELECT MAX(key) FROM images)",
                [],
            )
            .unwrap();
    }
    let reader = Reader::open(&ds).unwrap();
    let prep = Preprocess::radfm(16, "test");
    let mut seen = 0;
    let store = FrameStore::open(&ds, &reader, &prep, 256, 2, &mut |n| seen += n).unwrap();
    assert_eq!(seen, 5, "progress counts every image");
    assert!(!store.reused());
    assert_eq!(store.len(), 4);
    assert_eq!(store.skipped().len(), 1);
    let (bad, why) = &store.skipped()[0];
    assert_eq!(*bad, 4);
    assert!(why.contains("is not in"), "{why}");
    // each row is its image's frame, preprocessed, in the reader's order
    let mut want = Vec::new();
    reader
        .stream::<radfm_data::DataError>(8, &mut |items| {
            for (i, px) in items {
                if let Ok(px) = px {
                    for (k, f) in prep.frames(&px).unwrap().into_iter().enumerate() {
                        want.push(((i, k), f));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(want.len(), 4);
    for (r, (owner, values)) in want.iter().enumerate() {
        assert_eq!(store.owner(r), *owner);
        assert_eq!(&store.row(r).unwrap(), values);
    }
    assert!(store.row(4).is_err(), "past the end");
    // a second open reads the cache; another preprocessing gets its own file
    let again = FrameStore::open(&ds, &reader, &prep, 256, 2, &mut |_| {}).unwrap();
    assert!(again.reused());
    assert_eq!(again.owners(), store.owners());
    assert_eq!(again.row(3).unwrap(), store.row(3).unwrap());
    let other = FrameStore::open(
        &ds,
        &reader,
        &Preprocess::radfm(8, "test"),
        64,
        2,
        &mut |_| {},
    )
    .unwrap();
    assert!(!other.reused());
    assert_ne!(other.path(), store.path());
    // a cache cut short is not trusted: it is rebuilt
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(store.path())
        .unwrap();
    f.set_len(100).unwrap();
    let rebuilt = FrameStore::open(&ds, &reader, &prep, 256, 2, &mut |_| {}).unwrap();
    assert!(!rebuilt.reused());
    assert_eq!(rebuilt.row(3).unwrap(), want[3].1);
}
