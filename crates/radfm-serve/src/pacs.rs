//! `radfm pacs sync`: results back into a PACS over DICOMweb.
//!
//! 1. QIDO-RS lists the server's studies; those already done for this model
//!    (in the state database) are passed over.
//! 2. WADO-RS retrieves a study's instances; the model scores every image
//!    (SRs and other non-images are passed over; a file it cannot read is
//!    logged, by the hash of its UID, and the rest go on).
//! 3. One SR per study, with UIDs derived from the study UID and the model's
//!    checksum, is stored back with STOW-RS.
//!
//! Idempotent: the state records a study's SR UID as `storing` before the
//! STOW and `stored` after it. A study left `storing` (a crash, a kill -9, a
//! lost response) is looked up on the server (QIDO for the SR's UID) before
//! it is tried again, and so is a study the state has never seen: a second
//! run, or one after a kill at any point, posts no second SR.
//!
//! The state keys studies by sha256(study UID, model checksum): it holds no
//! UID of the archive's, and a new model version gets its own results.
//!
//! The DICOMweb client is the `dicom-web` crate (QIDO, WADO and STOW over
//! reqwest). Its WADO parses each instance with dicom-object; radfm
//! re-encodes it and reads it with its own reader, so a file dicom-object
//! cannot parse is an error for that study.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dicom_core::ops::AttributeSelector;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_web::DicomWebClient;
use futures_util::StreamExt;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{hash_uid, sr_bytes, Model};

/// Set to N, the process aborts right after the Nth successful STOW, before
/// the state records it: the crash window a kill -9 can hit, made
/// deterministic for the tests.
pub const CRASH_AFTER_STORE_ENV: &str = "RADFM_SYNC_CRASH_AFTER_STORE";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("state database {path}: {source}")]
    State {
        path: String,
        source: rusqlite::Error,
    },
    #[error("querying studies at {url}: {reason}")]
    Query { url: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What one pass did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// studies the server listed
    pub studies: usize,
    /// SRs stored by this pass
    pub stored: usize,
    /// studies done before (in the state)
    pub done_before: usize,
    /// studies whose SR was found on the server (an uncertain store that had landed)
    pub found_on_server: usize,
    /// studies with no image the model could score (no SR)
    pub no_images: usize,
    /// studies that failed this pass (retried on the next)
    pub failed: usize,
    /// images scored
    pub images: usize,
    /// instances that could not be scored (logged; the study went on)
    pub image_errors: usize,
}

/// The state database.
pub struct StateDb {
    conn: rusqlite::Connection,
    path: String,
}

/// A study's row.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyState {
    pub status: String,
    pub sr_uid: String,
}

impl StateDb {
    pub fn open(path: &Path) -> Result<StateDb, SyncError> {
        let p = path.display().to_string();
        let err = |source| SyncError::State {
            path: p.clone(),
            source,
        };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS studies (
               study_key TEXT PRIMARY KEY,  -- sha256(study UID, model sha256)
               sr_uid    TEXT NOT NULL,
               status    TEXT NOT NULL,     -- storing | stored | no_images | failed
               images    INTEGER NOT NULL DEFAULT 0,
               detail    TEXT,
               attempts  INTEGER NOT NULL DEFAULT 0,
               updated   TEXT NOT NULL      -- unix seconds
             );",
        )
        .map_err(err)?;
        Ok(StateDb { conn, path: p })
    }

    fn err(&self, source: rusqlite::Error) -> SyncError {
        SyncError::State {
            path: self.path.clone(),
            source,
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<StudyState>, SyncError> {
        self.conn
            .query_row(
                "SELECT status, sr_uid FROM studies WHERE study_key = ?1",
                [key],
                |r| {
                    Ok(StudyState {
                        status: r.get(0)?,
                        sr_uid: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set(
        &self,
        key: &str,
        sr_uid: &str,
        status: &str,
        images: usize,
        detail: Option<&str>,
    ) -> Result<(), SyncError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        self.conn
            .execute(
                "INSERT INTO studies (study_key, sr_uid, status, images, detail, attempts, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)
                 ON CONFLICT(study_key) DO UPDATE SET sr_uid = ?2, status = ?3, images = ?4,
                   detail = ?5, attempts = attempts + (?3 = 'storing'), updated = ?6",
                params![key, sr_uid, status, images as i64, detail, now],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Rows by status, for reports and tests.
    pub fn counts(&self) -> Result<Vec<(String, usize)>, SyncError> {
        let mut st = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM studies GROUP BY status ORDER BY status")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// The state key of a study for a model.
pub fn study_key(study_uid: &str, model_sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(study_uid.as_bytes());
    h.update([0u8]);
    h.update(model_sha256.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SR identity of a study's results from a model.
pub fn sr_identity(study_uid: &str, model_sha256: &str) -> radfm_dicom::sr::SrIdentity {
    radfm_dicom::sr::SrIdentity::derived(&[study_uid, model_sha256], SystemTime::now())
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .filter(|s| !s.is_empty())
}

/// A DICOMweb server and what to reach it with.
pub struct Pacs {
    pub url: String,
    client: DicomWebClient,
}

impl Pacs {
    pub fn new(url: &str, token: Option<&str>) -> Pacs {
        let url = url.trim_end_matches('/').to_string();
        let mut client = DicomWebClient::with_single_url(&url);
        if let Some(t) = token {
            client.set_bearer_token(t.trim());
        }
        Pacs { url, client }
    }

    /// Every study's UID, a page at a time.
    pub async fn studies(&self) -> Result<Vec<String>, SyncError> {
        const PAGE: u32 = 500;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .client
                .query_studies()
                .with_limit(PAGE)
                .with_offset(offset)
                .with_includefields(vec![tags::STUDY_INSTANCE_UID])
                .run()
                .await
                .map_err(|e| SyncError::Query {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
            let n = page.len();
            out.extend(
                page.iter()
                    .filter_map(|o| text(o, tags::STUDY_INSTANCE_UID)),
            );
            if n < PAGE as usize {
                break;
            }
            offset += PAGE;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Instances of `study` with SOP Instance UID `sop` (zero or one).
    pub async fn has_instance(&self, study: &str, sop: &str) -> Result<bool, String> {
        let found = self
            .client
            .query_instances()
            .with_filter(
                AttributeSelector::from(tags::STUDY_INSTANCE_UID),
                study.to_string(),
            )
            .with_filter(
                AttributeSelector::from(tags::SOP_INSTANCE_UID),
                sop.to_string(),
            )
            .run()
            .await
            .map_err(|e| e.to_string())?;
        Ok(found
            .iter()
            .any(|o| text(o, tags::SOP_INSTANCE_UID).as_deref() == Some(sop)))
    }

    /// Every instance of a study, as Part-10 bytes.
    pub async fn retrieve(&self, study: &str) -> Result<Vec<Vec<u8>>, String> {
        let mut stream = self
            .client
            .retrieve_study(study)
            .run()
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let obj = item.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            obj.write_all(&mut buf).map_err(|e| e.to_string())?;
            out.push(buf);
        }
        Ok(out)
    }

    /// Store one instance in `study` (STOW-RS); an error names the reason.
    pub async fn store(&self, study: &str, bytes: Vec<u8>) -> Result<(), String> {
        let resp = self
            .client
            .store_instances_in_study(study)
            .with_data(futures_util::stream::once(async move { bytes }))
            .run()
            .await
            .map_err(|e| e.to_string())?;
        // an empty Failed SOP Sequence (Orthanc sends one) is no failure
        let failed = resp
            .element(tags::FAILED_SOP_SEQUENCE)
            .ok()
            .and_then(|e| e.items())
            .map_or(0, |i| i.len());
        if failed > 0 {
            let reason = resp
                .element(tags::FAILED_SOP_SEQUENCE)
                .ok()
                .and_then(|e| e.items())
                .and_then(|i| i.first())
                .and_then(|i| i.element(tags::FAILURE_REASON).ok())
                .and_then(|e| e.to_int::<u16>().ok());
            return Err(format!(
                "the server refused the SR (Failed SOP Sequence, Failure Reason {})",
                reason.map_or("not given".into(), |r| format!("{r:#06X}"))
            ));
        }
        Ok(())
    }
}

/// One pass over the server's studies. `progress` hears a line per study
/// (hashed UIDs only).
pub async fn sync_once(
    model: Arc<dyn Model>,
    pacs: &Pacs,
    state: &StateDb,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, SyncError> {
    let sha = model.algorithm().sha256.clone();
    let studies = pacs.studies().await?;
    let mut report = Report {
        studies: studies.len(),
        ..Report::default()
    };
    let crash_after: Option<usize> = std::env::var(CRASH_AFTER_STORE_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    for study in &studies {
        let key = study_key(study, &sha);
        let tag = hash_uid(study);
        // client errors quote URLs, which hold the study UID: logged by its hash instead
        let scrub = |e: &dyn std::fmt::Display| {
            e.to_string()
                .replace(study.as_str(), &format!("<study {tag}>"))
        };
        let row = state.get(&key)?;
        if row
            .as_ref()
            .is_some_and(|r| r.status == "stored" || r.status == "no_images")
        {
            report.done_before += 1;
            continue;
        }
        let id = sr_identity(study, &sha);
        // an uncertain store, or a study this state has not seen: is the SR there already?
        match pacs.has_instance(study, &id.instance_uid).await {
            Ok(true) => {
                state.set(
                    &key,
                    &id.instance_uid,
                    "stored",
                    0,
                    Some("found on the server"),
                )?;
                report.found_on_server += 1;
                progress(&format!("study {tag}: its SR is already on the server"));
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                state.set(&key, &id.instance_uid, "failed", 0, Some("QIDO failed"))?;
                report.failed += 1;
                progress(&format!(
                    "study {tag}: checking for its SR failed: {}",
                    scrub(&e)
                ));
                continue;
            }
        }
        let instances = match pacs.retrieve(study).await {
            Ok(v) => v,
            Err(e) => {
                // (a study left `storing` is asked about again on every pass, whatever its status)
                state.set(&key, &id.instance_uid, "failed", 0, Some("WADO failed"))?;
                report.failed += 1;
                progress(&format!("study {tag}: retrieving failed: {}", scrub(&e)));
                continue;
            }
        };
        let m = model.clone();
        let (analyses, errors) = tokio::task::spawn_blocking(move || {
            let mut ok = Vec::new();
            let mut errors = Vec::new();
            for bytes in &instances {
                match crate::analyse_unless_sr(&*m, bytes) {
                    Ok(Some(a)) => ok.push(a),
                    Ok(None) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (ok, errors)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        for e in &errors {
            tracing::warn!(study = %tag, "an instance was not scored: {}", scrub(e));
        }
        report.image_errors += errors.len();
        if analyses.is_empty() {
            let why = format!("no image the model could score ({} errors)", errors.len());
            state.set(&key, &id.instance_uid, "no_images", 0, Some(&why))?;
            report.no_images += 1;
            progress(&format!("study {tag}: {why}"));
            continue;
        }
        let refs: Vec<&crate::Analysis> = analyses.iter().collect();
        let sr = match sr_bytes(&*model, &refs, &id) {
            Ok(b) => b,
            Err(e) => {
                state.set(&key, &id.instance_uid, "failed", 0, Some(&scrub(&e)))?;
                report.failed += 1;
                progress(&format!("study {tag}: {}", scrub(&e)));
                continue;
            }
        };
        // recorded before the store: after a crash the server is asked first
        state.set(&key, &id.instance_uid, "storing", analyses.len(), None)?;
        match pacs.store(study, sr).await {
            Ok(()) => {
                if crash_after.is_some_and(|n| report.stored + 1 >= n) {
                    std::process::abort();
                }
                state.set(&key, &id.instance_uid, "stored", analyses.len(), None)?;
                report.stored += 1;
                report.images += analyses.len();
                progress(&format!(
                    "study {tag}: SR of {} images stored ({} instances not scored)",
                    analyses.len(),
                    errors.len()
                ));
            }
            Err(e) => {
                // left `storing`: the next pass asks the server before retrying
                report.failed += 1;
                progress(&format!(
                    "study {tag}: storing the SR failed: {}",
                    scrub(&e)
                ));
            }
        }
    }
    Ok(report)
}

/// How often to pass over the server.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Once,
    Poll(Duration),
}

/// Run passes until done (`Once`) or until SIGTERM / Ctrl-C (`Poll`). A
/// signal may stop a pass between any two requests; the state makes that as
/// safe as a kill. `report` hears each pass's result.
pub fn run(
    model: Arc<dyn Model>,
    url: &str,
    token: Option<&str>,
    state_path: &Path,
    mode: Mode,
    progress: &(dyn Fn(&str) + Sync),
    report: &dyn Fn(&Report),
) -> Result<Report, SyncError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let state = StateDb::open(state_path)?;
    let pacs = Pacs::new(url, token);
    rt.block_on(async {
        let mut stop = Box::pin(crate::server::terminate());
        loop {
            let r = tokio::select! {
                r = sync_once(model.clone(), &pacs, &state, progress) => r?,
                _ = &mut stop => return Ok(Report::default()),
            };
            report(&r);
            match mode {
                Mode::Once => return Ok(r),
                Mode::Poll(every) => {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {},
                        _ = &mut stop => return Ok(r),
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_records_the_sr_uid_before_and_after_the_store_and_keys_by_hash() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("state.sqlite");
        let study = "1.2.826.0.1.3680043.10.99.1";
        let key = study_key(study, "ab");
        assert_eq!(key.len(), 64);
        assert_ne!(key, study_key(study, "cd"), "another model, another key");
        let id = sr_identity(study, "ab");
        assert_eq!(id.instance_uid, sr_identity(study, "ab").instance_uid);
        {
            let db = StateDb::open(&p).unwrap();
            assert_eq!(db.get(&key).unwrap(), None);
            db.set(&key, &id.instance_uid, "storing", 3, None).unwrap();
        }
        // a reopened state (after a crash) still says storing, with the UID
        let db = StateDb::open(&p).unwrap();
        assert_eq!(
            db.get(&key).unwrap(),
            Some(StudyState {
                status: "storing".into(),
                sr_uid: id.instance_uid.clone()
            })
        );
        db.set(&key, &id.instance_uid, "stored", 3, None).unwrap();
        assert_eq!(db.get(&key).unwrap().unwrap().status, "stored");
        assert_eq!(db.counts().unwrap(), vec![("stored".to_string(), 1)]);
        drop(db);
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(study),
            "no study UID in the state"
        );
    }
}
