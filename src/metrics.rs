//! The record counts of a run, in one shape wherever they are kept or shown: the pipeline's
//! running totals and checkpoints, its run report, the catalog's run record, live progress in
//! the CLI and the console.
//!
//! The rule every run keeps: records received = records ingested + records rejected
//! ([`RecordCounts::balanced`]), rejected rows counted once, under their deciding error code.

use std::collections::BTreeMap;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// How many records went where. Every field defaults to zero when absent from stored JSON, so
/// older checkpoints read as they were. Serialized with one derived field
/// besides: `created` ([`RecordCounts::created`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecordCounts {
    /// Records received from Stripe (list pages and objects read again through events).
    pub fetched: u64,
    /// Records committed to the mirror (all fetched records, those that did not decode with
    /// their reason in `_decode_error`).
    pub staged: u64,
    /// Records accepted into the batch.
    pub ingested: u64,
    /// Records rejected (Platform's "failed" records).
    pub rejected: u64,
    /// Rejected records by their deciding error code; sums to `rejected`.
    pub rejected_by_code: BTreeMap<String, u64>,
    /// Fields nulled by failed conversions in accepted rows.
    pub warnings: u64,
    /// Records of objects changed since an earlier run, read through events (part of `fetched`).
    pub updated: u64,
    /// Objects deleted in Stripe (tombstones; not part of `fetched`).
    pub deleted: u64,
    /// Events read.
    pub events_read: u64,
    /// List pages received.
    pub pages: u64,
    /// Bytes of JSON received.
    pub bytes_in: u64,
    /// Bytes of accepted Parquet written.
    pub bytes_out: u64,
    /// Accepted Parquet files written.
    pub files: u64,
}

impl RecordCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &RecordCounts) {
        self.fetched += other.fetched;
        self.staged += other.staged;
        self.ingested += other.ingested;
        self.warnings += other.warnings;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.events_read += other.events_read;
        self.pages += other.pages;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.files += other.files;
        self.rejected += other.rejected;
        for (code, n) in &other.rejected_by_code {
            *self.rejected_by_code.entry(code.clone()).or_default() += n;
        }
    }

    /// Counts `n` rejected records under `code`.
    pub fn reject(&mut self, code: &str, n: u64) {
        match self.rejected_by_code.get_mut(code) {
            Some(c) => *c += n,
            None => {
                self.rejected_by_code.insert(code.to_string(), n);
            }
        }
        self.rejected += n;
    }

    /// Sets `rejected` from `rejected_by_code` (for counts read from a store that kept only
    /// the codes).
    pub fn with_rejected_from_codes(mut self) -> Self {
        self.rejected = self.rejected_by_code.values().sum();
        self
    }

    /// Records of objects new to the dataflow: `fetched - updated`.
    pub fn created(&self) -> u64 {
        self.fetched.saturating_sub(self.updated)
    }

    /// True when every record received is either ingested or rejected.
    pub fn balanced(&self) -> bool {
        self.fetched == self.ingested + self.rejected
    }
}

impl Serialize for RecordCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RecordCounts", 14)?;
        st.serialize_field("fetched", &self.fetched)?;
        st.serialize_field("created", &self.created())?;
        st.serialize_field("staged", &self.staged)?;
        st.serialize_field("ingested", &self.ingested)?;
        st.serialize_field("rejected", &self.rejected)?;
        st.serialize_field("rejected_by_code", &self.rejected_by_code)?;
        st.serialize_field("warnings", &self.warnings)?;
        st.serialize_field("updated", &self.updated)?;
        st.serialize_field("deleted", &self.deleted)?;
        st.serialize_field("events_read", &self.events_read)?;
        st.serialize_field("pages", &self.pages)?;
        st.serialize_field("bytes_in", &self.bytes_in)?;
        st.serialize_field("bytes_out", &self.bytes_out)?;
        st.serialize_field("files", &self.files)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_keeps_rejected_equal_to_its_codes() {
        let mut a = RecordCounts {
            fetched: 3,
            ingested: 2,
            ..Default::default()
        };
        a.reject("INGEST-1401-400", 1);
        let mut b = RecordCounts {
            fetched: 2,
            ..Default::default()
        };
        b.reject("INGEST-1401-400", 1);
        b.reject("XDM-1006-400", 1);
        a.add(&b);
        assert_eq!(a.fetched, 5);
        assert_eq!(a.rejected, 3);
        assert_eq!(a.rejected_by_code["INGEST-1401-400"], 2);
        assert!(a.balanced());
    }

    #[test]
    fn json_round_trips_with_created_derived() {
        let mut c = RecordCounts {
            fetched: 5,
            updated: 2,
            ingested: 4,
            ..Default::default()
        };
        c.reject("X", 1);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["created"], 3);
        assert_eq!(serde_json::from_value::<RecordCounts>(json).unwrap(), c);
    }

    #[test]
    fn old_json_reads_with_defaults() {
        let c: RecordCounts =
            serde_json::from_str(r#"{"fetched":4,"rejected_by_code":{"X":1}}"#).unwrap();
        let c = c.with_rejected_from_codes();
        assert_eq!((c.fetched, c.rejected, c.ingested), (4, 1, 0));
    }
}
