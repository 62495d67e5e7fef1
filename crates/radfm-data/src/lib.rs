//! radfm-data: the dataset store (SQLite catalog, tar shards of `.npy` and
//! `.json`), ingest from DICOM archives, patient-level splits and dataset cards.

pub mod fsutil;
