//! The SQLite catalog of a dataset: patients, studies, series, images,
//! reports, the source files seen (for resume) and the runs that wrote it.
//!
//! Every write happens in a transaction, and the database runs in WAL mode,
//! so a reader never sees a half-written row and a killed ingest leaves the
//! catalog at its last commit.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::DataError;

pub const FILE_NAME: &str = "catalog.sqlite";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    radfm_version TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS patients (
    patient_key TEXT PRIMARY KEY,
    sex TEXT,
    split TEXT
);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_key TEXT NOT NULL REFERENCES patients(patient_key),
    accession TEXT,
    study_date TEXT,
    age_years REAL,
    site TEXT
);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid),
    modality TEXT,
    manufacturer TEXT,
    body_part TEXT,
    series_number INTEGER
);
CREATE TABLE IF NOT EXISTS images (
    image_id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    sop_uid TEXT NOT NULL UNIQUE,
    series_uid TEXT NOT NULL REFERENCES series(series_uid),
    study_uid TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    modality TEXT,
    view_position TEXT,
    laterality TEXT,
    manufacturer TEXT,
    sex TEXT,
    age_years REAL,
    site TEXT,
    frames INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    columns INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    orig_rows INTEGER NOT NULL,
    orig_columns INTEGER NOT NULL,
    spacing_row REAL,
    spacing_col REAL,
    spacing_slice REAL,
    shard TEXT NOT NULL,
    run_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_patient ON images(patient_key);
CREATE TABLE IF NOT EXISTS reports (
    study_uid TEXT PRIMARY KEY REFERENCES studies(study_uid),
    text TEXT NOT NULL,
    phi_replaced INTEGER NOT NULL,
    labeled_by TEXT
);
CREATE TABLE IF NOT EXISTS labels (
    study_uid TEXT NOT NULL REFERENCES reports(study_uid),
    observation TEXT NOT NULL,
    status INTEGER NOT NULL CHECK (status IN (1, 0, -1)),
    evidence_start INTEGER,
    evidence_end INTEGER,
    PRIMARY KEY (study_uid, observation)
);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    image_key TEXT,
    run_id INTEGER NOT NULL
);
"#;

pub struct Catalog {
    pub conn: Connection,
}

/// Provenance of one input file, as recorded in `sources`. The file is named
/// by its pseudonymous key only: paths of PACS exports carry names, MRNs and
/// accession numbers. The key-to-path map lives outside the dataset
/// (`DATASET.sources.jsonl`, see [`crate::ingest`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub source: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub status: String,
    pub reason: Option<String>,
    pub image_key: Option<String>,
}

/// One image of the catalog with what image-report training needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageReport {
    pub key: String,
    pub shard: String,
    pub study_uid: String,
    pub patient_key: String,
    pub split: Option<String>,
    /// the study's report text, as stored (PHI already replaced at ingest)
    pub report: Option<String>,
}

impl Catalog {
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(|e| DataError::Catalog {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let c = Catalog { conn };
        c.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            )
            .and_then(|_| c.conn.execute_batch(SCHEMA))
            .map_err(|e| DataError::Catalog {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // catalogs before format 2 named input files by their paths
        let columns: Vec<String> = c
            .conn
            .prepare("SELECT name FROM pragma_table_info('sources')")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| DataError::Catalog {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if !columns.iter().any(|c| c == "source") {
            return Err(DataError::Catalog {
                path,
                reason: "written by an earlier radfm that stored input paths in the dataset; \
                         ingest again into a new dataset directory"
                    .into(),
            });
        }
        // catalogs before weak labels: their reports gain the column, NULL
        // (not labelled; `radfm reports label` fills them in)
        let report_columns: Vec<String> = c
            .conn
            .prepare("SELECT name FROM pragma_table_info('reports')")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| DataError::Catalog {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if !report_columns.iter().any(|c| c == "labeled_by") {
            c.conn
                .execute_batch("ALTER TABLE reports ADD COLUMN labeled_by TEXT")
                .map_err(|e| DataError::Catalog {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(c)
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
    }

    /// Set a value of the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn begin_run(&self, config: &serde_json::Value) -> rusqlite::Result<i64> {
        self.conn.execute(
            "INSERT INTO runs(started_at, radfm_version, config) VALUES (datetime('now'), ?1, ?2)",
            params![env!("CARGO_PKG_VERSION"), config.to_string()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&self, run_id: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = datetime('now') WHERE run_id = ?1",
            params![run_id],
        )?;
        Ok(())
    }

    /// A source (by key) already handled with the same size and mtime.
    pub fn source_done(&self, source: &str, size: u64, mtime_ns: i64) -> rusqlite::Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM sources WHERE source = ?1 AND size = ?2 AND mtime_ns = ?3",
                params![source, size as i64, mtime_ns],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
    }

    pub fn has_sop(&self, sop_uid: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT key FROM images WHERE sop_uid = ?1",
                params![sop_uid],
                |r| r.get(0),
            )
            .optional()
    }

    pub fn next_image_id(&self) -> rusqlite::Result<i64> {
        self.conn.query_row(
            "SELECT COALESCE(MAX(image_id), 0) + 1 FROM images",
            [],
            |r| r.get(0),
        )
    }

    /// Shard file names referenced by committed images.
    pub fn shards(&self) -> rusqlite::Result<std::collections::HashSet<String>> {
        let mut st = self.conn.prepare("SELECT DISTINCT shard FROM images")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    }

    pub fn sources(&self) -> rusqlite::Result<Vec<SourceRow>> {
        let mut st = self.conn.prepare(
            "SELECT source, size, mtime_ns, status, reason, image_key FROM sources ORDER BY source",
        )?;
        let rows = st.query_map([], |r| {
            Ok(SourceRow {
                source: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                mtime_ns: r.get(2)?,
                status: r.get(3)?,
                reason: r.get(4)?,
                image_key: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    /// The site labels of the catalogued studies, sorted.
    pub fn sites(&self) -> rusqlite::Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT site FROM studies WHERE site IS NOT NULL ORDER BY site")?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    /// Every 2-D image (`kind = 'image'`) with its study's report (`None` when the
    /// study has none) and its patient's split (`None` before `radfm split`),
    /// ordered by image key.
    pub fn image_reports(&self) -> rusqlite::Result<Vec<ImageReport>> {
        let mut st = self.conn.prepare(
            "SELECT i.key, i.shard, i.study_uid, i.patient_key, p.split, r.text
             FROM images i
             LEFT JOIN patients p ON p.patient_key = i.patient_key
             LEFT JOIN reports r ON r.study_uid = i.study_uid
             WHERE i.kind = 'image'
             ORDER BY i.key",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ImageReport {
                key: r.get(0)?,
                shard: r.get(1)?,
                study_uid: r.get(2)?,
                patient_key: r.get(3)?,
                split: r.get(4)?,
                report: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    pub fn count(&self, table: &str) -> rusqlite::Result<i64> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
    }
}
