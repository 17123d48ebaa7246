//! The history API of a store: the version number, the setting, tags, the versions listed;
//! collection is in `collect.rs`, the commit side (records, recovery) in `history.rs`.

use super::history::{
    current, ensure_words, keep_last, oldest_readable, read_log, read_tags, readable, set_word,
    tag_count, write_header_word, TAG_SHIFT,
};
use super::lock::KEEP;
use super::Store;
use crate::error::{NpkError, NpkResult};
use crate::format::history::{self as fmt, kept_name, Record, COUNTER_AT, KEEP_AT, TAGS_FILE};
use crate::io::fs;
use std::collections::BTreeMap;
/// One version, as `versions()` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version number.
    pub version: u64,
    /// When it was committed (µs since the epoch; 0 when unknown).
    pub time_us: u64,
    /// What made it.
    pub op: &'static str,
    /// The arrays it changed.
    pub arrays: Vec<String>,
    /// Bytes history keeps to read the version before it.
    pub bytes_kept: u64,
    /// Its tags.
    pub tags: Vec<String>,
    /// The mutation was interrupted: the state equals the version before.
    pub aborted: bool,
}

/// What `gc` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Versions no longer readable.
    pub versions_removed: u64,
    /// Bytes of kept files and records freed.
    pub bytes_freed: u64,
    /// The oldest readable version after it.
    pub oldest: u64,
}

impl Store {
    /// The current version number of the store.
    pub fn version(&self) -> NpkResult<u64> {
        let _g = self.shared_lock()?;
        current(self.dir(), self.store_lock())
    }

    /// How many versions the store keeps by default (0: history off).
    pub fn history_setting(&self) -> NpkResult<u64> {
        let _g = self.shared_lock()?;
        ensure_words(self.dir(), self.store_lock())?;
        Ok(keep_last(self.store_lock()))
    }

    /// Keeps the last `keep_last` versions from now on (persisted; 0 turns history off).
    pub fn set_history(&self, keep_last: u64) -> NpkResult<()> {
        let keep_last = keep_last.min(u64::from(u32::MAX));
        let _g = self.lock_for_write()?;
        let lock = self.store_lock();
        ensure_words(self.dir(), lock)?;
        // The counter first, so a new log starts at the current version.
        let v = current(self.dir(), lock)?;
        if read_log(self.dir())?.is_none() {
            write_header_word(self.dir(), COUNTER_AT, v, self.durable())?;
            write_header_word(self.dir(), COUNTER_AT + 8, v, self.durable())?;
        }
        write_header_word(self.dir(), KEEP_AT, keep_last, self.durable())?;
        set_word(lock, KEEP, keep_last | (tag_count(lock) << TAG_SHIFT));
        if keep_last == 0 {
            self.gc_locked(0, None)?;
        }
        Ok(())
    }

    /// Tags: name → version.
    pub fn tags(&self) -> NpkResult<BTreeMap<String, u64>> {
        let _g = self.shared_lock()?;
        read_tags(self.dir())
    }

    /// Names `version` (the current one when `None`) `name`; a tagged version is kept until
    /// the tag is removed. Returns the version tagged.
    pub fn tag(&self, name: &str, version: Option<u64>) -> NpkResult<u64> {
        fmt::check_tag(name).map_err(NpkError::InvalidOperation)?;
        let _g = self.lock_for_write()?;
        let lock = self.store_lock();
        let now = current(self.dir(), lock)?;
        let v = version.unwrap_or(now);
        self.check_readable(v)?;
        if v == now && read_log(self.dir())?.is_none() {
            write_header_word(self.dir(), COUNTER_AT, v, self.durable())?;
            write_header_word(self.dir(), COUNTER_AT + 8, v, self.durable())?;
        }
        let mut tags = read_tags(self.dir())?;
        tags.insert(name.to_owned(), v);
        if tags.len() > fmt::MAX_TAGS {
            return Err(NpkError::InvalidOperation(format!(
                "a store keeps at most {} tags",
                fmt::MAX_TAGS
            )));
        }
        self.write_tags(&tags)?;
        Ok(v)
    }

    /// Removes a tag (its version is then collected like any other).
    pub fn untag(&self, name: &str) -> NpkResult<()> {
        let _g = self.lock_for_write()?;
        let mut tags = read_tags(self.dir())?;
        if tags.remove(name).is_none() {
            return Err(NpkError::InvalidOperation(format!("no tag named {name:?}")));
        }
        self.write_tags(&tags)
    }

    fn write_tags(&self, tags: &BTreeMap<String, u64>) -> NpkResult<()> {
        let path = self.dir().join(TAGS_FILE);
        let tmp = super::commit::tmp_path(self.dir(), TAGS_FILE);
        fs::write_new(&tmp, &fmt::encode_tags(tags), self.durable())?;
        fs::rename(&tmp, &path).map_err(|e| NpkError::io(&path, e))?;
        if self.durable() {
            fs::sync_dir(self.dir())?;
        }
        let lock = self.store_lock();
        ensure_words(self.dir(), lock)?;
        set_word(
            lock,
            KEEP,
            keep_last(lock) | ((tags.len() as u64) << TAG_SHIFT),
        );
        Ok(())
    }

    /// The version a tag names.
    pub fn tagged(&self, name: &str) -> NpkResult<u64> {
        self.tags()?
            .get(name)
            .copied()
            .ok_or_else(|| NpkError::InvalidOperation(format!("no tag named {name:?}")))
    }

    /// Fails unless `v` can be read (a lock held).
    pub(crate) fn check_readable(&self, v: u64) -> NpkResult<()> {
        let now = current(self.dir(), self.store_lock())?;
        if v == now {
            return Ok(());
        }
        if v > now {
            return Err(NpkError::InvalidOperation(format!(
                "version {v} does not exist yet (the store is at version {now})"
            )));
        }
        let log = read_log(self.dir())?.unwrap_or_default();
        if !readable(&log, v, now) {
            return Err(NpkError::InvalidOperation(format!(
                "version {v} is no longer kept (history keeps versions {}..={now}; turn \
                 history on with set_history(keep_last=N) to keep more)",
                oldest_readable(&log, now)
            )));
        }
        Ok(())
    }

    /// Every readable version, oldest first, the current one last.
    pub fn versions(&self) -> NpkResult<Vec<VersionInfo>> {
        let _g = self.shared_lock()?;
        let now = current(self.dir(), self.store_lock())?;
        let log = read_log(self.dir())?.unwrap_or_default();
        let tags = read_tags(self.dir())?;
        let first = oldest_readable(&log, now);
        let by_version: BTreeMap<u64, &Record> =
            log.records.iter().map(|(_, r)| (r.version, r)).collect();
        let mut out = Vec::new();
        for v in first..=now {
            let rec = by_version.get(&v);
            let kept = rec.map_or(0, |r| {
                r.payload_bytes()
                    + r.files
                        .iter()
                        .filter(|(_, k)| *k)
                        .filter_map(|(f, _)| {
                            fs::file_len(&self.dir().join(kept_name(v, f)))
                                .ok()
                                .flatten()
                        })
                        .sum::<u64>()
            });
            out.push(VersionInfo {
                version: v,
                time_us: rec.map_or(0, |r| r.time_us),
                op: rec.map_or("", |r| r.op.name()),
                arrays: rec.map_or_else(Vec::new, |r| {
                    r.arrays.iter().map(|(n, _)| n.clone()).collect()
                }),
                bytes_kept: kept,
                tags: tags
                    .iter()
                    .filter(|(_, &t)| t == v)
                    .map(|(n, _)| n.clone())
                    .collect(),
                aborted: rec.is_some_and(|r| r.aborted),
            });
        }
        Ok(out)
    }
}
