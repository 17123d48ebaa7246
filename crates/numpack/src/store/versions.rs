//! The history API of a store: the version number, the setting, tags, the versions listed,
//! and collection (`gc`). The commit side (records, recovery) is in `history.rs`.

use super::history::{
    current, ensure_words, keep_last, oldest_readable, read_log, read_tags, readable,
    remove_stray_kept, set_word, tag_count, word, write_header_word, Plan, GC_SLACK, TAG_SHIFT,
};
use super::lock::{KEEP, LOG_END, LOG_GEN, RECORDS};
use super::{now_micros, pins, Store};
use crate::error::{NpkError, NpkResult};
use crate::format::history::{
    self as fmt, kept_name, Header, Record, COUNTER_AT, KEEP_AT, LOG_FILE, TAGS_FILE,
};
use crate::io::fs;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
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

    /// Collects history: versions beyond the last `keep_last` (and, with `older_than_us`,
    /// older than that many µs) stop being readable, and what only they needed is removed.
    /// Versions that an open snapshot of any process or a tag still reads are kept.
    pub fn gc(&self, keep_last: Option<u64>, older_than_us: Option<u64>) -> NpkResult<GcReport> {
        let _g = self.lock_for_write()?;
        ensure_words(self.dir(), self.store_lock())?;
        let keep = keep_last.unwrap_or_else(|| super::history::keep_last(self.store_lock()));
        self.gc_locked(keep, older_than_us)
    }

    /// [`Store::gc`] under the exclusive lock.
    pub(crate) fn gc_locked(&self, keep: u64, older_than_us: Option<u64>) -> NpkResult<GcReport> {
        let dir = self.dir();
        let lock = self.store_lock();
        let now = current(dir, lock)?;
        let Some(log) = read_log(dir)? else {
            return Ok(GcReport {
                oldest: now,
                ..GcReport::default()
            });
        };
        let first = oldest_readable(&log, now);
        let mut floor = now.saturating_sub(keep);
        if let Some(age) = older_than_us {
            // Versions younger than the cut stay.
            let cut = now_micros().saturating_sub(age);
            let young = log
                .records
                .iter()
                .find(|(_, r)| r.version > first && r.time_us >= cut)
                .map_or(now, |(_, r)| r.version - 1);
            floor = floor.min(young.max(first));
        }
        if let Some(p) = pins::oldest(lock) {
            floor = floor.min(p);
        }
        if let Some(&t) = read_tags(dir)?.values().filter(|&&t| t >= first).min() {
            floor = floor.min(t);
        }
        let floor = floor.max(first);
        let (gone, kept): (Vec<_>, Vec<_>) =
            log.records.iter().partition(|(_, r)| r.version <= floor);
        if gone.is_empty() && log.header.floor == floor {
            return Ok(GcReport {
                oldest: floor,
                ..GcReport::default()
            });
        }
        let header = Header {
            counter: log.header.counter.max(floor),
            floor,
            keep_last: log.header.keep_last,
        };
        let mut bytes = header.encode();
        for (_, r) in &kept {
            bytes.extend(r.encode());
        }
        let path = dir.join(LOG_FILE);
        let tmp = super::commit::tmp_path(dir, LOG_FILE);
        fs::write_new(&tmp, &bytes, self.durable())?;
        fs::rename(&tmp, &path).map_err(|e| NpkError::io(&path, e))?;
        if self.durable() {
            fs::sync_dir(dir)?;
        }
        lock.word(LOG_GEN).fetch_add(1, Ordering::AcqRel);
        set_word(lock, LOG_END, bytes.len() as u64);
        set_word(lock, RECORDS, kept.len() as u64);
        let mut freed = 0u64;
        for (_, r) in &gone {
            freed += r.payload_bytes();
            for (f, k) in &r.files {
                if *k {
                    let p = dir.join(kept_name(r.version, f));
                    freed += fs::file_len(&p)?.unwrap_or(0);
                    fs::remove(&p)?;
                }
            }
        }
        remove_stray_kept(dir, &kept.iter().map(|(_, r)| r).collect::<Vec<_>>())?;
        Ok(GcReport {
            versions_removed: floor - first,
            bytes_freed: freed,
            oldest: floor,
        })
    }

    /// After a commit (exclusive lock held): collects old records when history grew past its
    /// setting, or when nothing needs them any more.
    pub(crate) fn after_commit(&self, plan: Plan) -> NpkResult<()> {
        let lock = self.store_lock();
        let records = word(lock, RECORDS).unwrap_or(0);
        let keep = keep_last(lock);
        let due = if plan.record {
            records > keep + GC_SLACK
        } else {
            records > 0
        };
        if due {
            // The mutation has committed: a collection that fails is retried by a later
            // commit or `gc`, never reported as a failure of the mutation.
            let _ = self.gc_locked(keep, None);
        }
        Ok(())
    }
}
