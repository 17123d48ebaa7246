//! Collection: versions older than what the store keeps stop being readable, and what only
//! they needed is freed. After a commit this is incremental: the log's start moves past the
//! collected records (one header write) and their blocks are punched out; the log is
//! rewritten only once its dead front outgrows what is live.

use super::history::{
    self, current, ensure_words, keep_last, oldest_readable, read_log, read_tags,
    remove_stray_kept, set_word, tag_count, word, Plan, GC_SLACK,
};
use super::lock::{LOG_END, LOG_GEN, RECORDS};
use super::versions::GcReport;
use super::{now_micros, pins, Store};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::history::{
    decode_through, kept_name, Header, COUNTER_AT, HEADER_BYTES, LOG_FILE, RECORD_HEAD, START_AT,
};
use crate::io::fs;
use std::sync::atomic::Ordering;

/// The dead front of the log that makes a collection rewrite it: this many bytes, and more
/// than [`REWRITE_RATIO`] times the live records.
const REWRITE_DEAD: u64 = 16 << 20;
const REWRITE_RATIO: u64 = 4;
/// Holes are punched in whole pages.
const PAGE: u64 = 4096;

impl Store {
    /// Collects history: versions beyond the last `keep_last` (and, with `older_than_us`,
    /// older than that many µs) stop being readable, and what only they needed is removed.
    /// Versions that an open snapshot of any process or a tag still reads are kept.
    pub fn gc(&self, keep_last: Option<u64>, older_than_us: Option<u64>) -> NpkResult<GcReport> {
        let _g = self.lock_for_write()?;
        ensure_words(self.dir(), self.store_lock())?;
        let keep = keep_last.unwrap_or_else(|| super::history::keep_last(self.store_lock()));
        let report = self.gc_locked(keep, older_than_us)?;
        // Segment folders whose manifests only collected versions named.
        let meta = self.metadata_file()?;
        super::segmented::reap_folders(
            self.dir(),
            meta.arrays.values().map(|a| a.data_file.as_str()),
        );
        Ok(report)
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
        if gone.is_empty() && log.header.floor == floor && log.header.start == HEADER_BYTES {
            return Ok(GcReport {
                oldest: floor,
                ..GcReport::default()
            });
        }
        let header = Header {
            counter: log.header.counter.max(floor),
            floor,
            keep_last: log.header.keep_last,
            start: HEADER_BYTES,
        };
        let mut bytes = header.encode();
        for (_, r) in &kept {
            bytes.extend(r.encode());
        }
        let path = dir.join(LOG_FILE);
        let tmp = super::commit::tmp_path(dir, LOG_FILE);
        fs::write_new(&tmp, &bytes, self.durable())?;
        // Bumped before and after: a lock-free reader that read across the rename sees a
        // change either way, and reads again.
        lock.word(LOG_GEN).fetch_add(1, Ordering::AcqRel);
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
            let _ = self.collect_front(keep);
        }
        Ok(())
    }

    /// The collection after a commit (exclusive lock held): records up to the new floor are
    /// dropped from the front of the log in place. Readers that read the log without the
    /// lock see the generation move before anything they may be reading goes.
    fn collect_front(&self, keep: u64) -> NpkResult<()> {
        let lock = self.store_lock();
        let path = self.dir().join(LOG_FILE);
        let mut cached = history::log_handle(lock, &path)?;
        let Some((_, file, _)) = cached.as_ref() else {
            return Ok(());
        };
        let out = self.drop_front(file, keep);
        // The file stays the same: the handle stays good at the generation moved past.
        if let Some(c) = cached.as_mut() {
            c.0 = lock.word(LOG_GEN).load(Ordering::Acquire);
        }
        drop(cached);
        let (start, end) = out?;
        let dead = start - HEADER_BYTES;
        if dead > REWRITE_DEAD && dead > REWRITE_RATIO * end.saturating_sub(start) {
            self.gc_locked(keep, None)?;
        }
        Ok(())
    }

    /// Moves the log's start past the records up to the new floor; the start and end after.
    fn drop_front(&self, file: &std::fs::File, keep: u64) -> NpkResult<(u64, u64)> {
        let dir = self.dir();
        let lock = self.store_lock();
        let now = current(dir, lock)?;
        let path = dir.join(LOG_FILE);
        let mut head = [0u8; HEADER_BYTES as usize];
        if fs::read_upto(file, &mut head, 0).at(&path)? < head.len() {
            return Err(NpkError::corrupt(&path, "shorter than its header"));
        }
        let header = Header::decode(&head).map_err(|r| NpkError::corrupt(&path, r))?;
        let mut floor = now.saturating_sub(keep);
        if let Some(p) = pins::oldest(lock) {
            floor = floor.min(p);
        }
        if tag_count(lock) > 0 {
            let tags = read_tags(dir)?;
            if let Some(&t) = tags.values().filter(|&&t| t >= header.floor).min() {
                floor = floor.min(t);
            }
        }
        let end = word(lock, LOG_END).unwrap_or(header.start);
        if floor <= header.floor {
            return Ok((header.start, end));
        }
        let mut gone = Vec::new();
        let mut at = header.start;
        let mut buf = Vec::new();
        while at + RECORD_HEAD as u64 <= end {
            let mut rhead = [0u8; RECORD_HEAD];
            fs::read_upto(file, &mut rhead, at).at(&path)?;
            let len = u64::from(u32::from_le_bytes(rhead[4..8].try_into().expect("4 bytes")));
            if at + RECORD_HEAD as u64 + len > end {
                break;
            }
            buf.resize(RECORD_HEAD + len as usize, 0);
            let got = fs::read_upto(file, &mut buf, at).at(&path)?;
            let (mut recs, reached) =
                decode_through(&buf[..got], at, floor).map_err(|r| NpkError::corrupt(&path, r))?;
            match recs.pop() {
                Some((_, r)) => gone.push(r),
                None => break,
            }
            at = reached;
        }
        let new = Header {
            counter: header.counter.max(floor),
            floor,
            start: at,
            ..header
        };
        let bytes = new.encode();
        // Counter, floor, keep-last and start in one write: a reader sees the old header or
        // the new one.
        let (from, to) = (COUNTER_AT as usize, START_AT as usize + 8);
        fs::write_at(file, &path, &bytes[from..to], COUNTER_AT)?;
        if self.durable() {
            // On disk before the records it drops lose their blocks.
            fs::sync_data(file, &path)?;
        }
        lock.word(LOG_GEN).fetch_add(1, Ordering::AcqRel);
        set_word(
            lock,
            RECORDS,
            word(lock, RECORDS)
                .unwrap_or(0)
                .saturating_sub(gone.len() as u64),
        );
        for r in &gone {
            for (f, k) in &r.files {
                if *k {
                    fs::remove(&dir.join(kept_name(r.version, f)))?;
                }
            }
        }
        // Only once the header is on disk: a power loss that kept the hole but not the new
        // start would leave the old start pointing into zeros, and every live record after
        // them unread. Without durability the dead front stays until the rewrite.
        let hole = header.start.next_multiple_of(PAGE)..at / PAGE * PAGE;
        if self.durable() && hole.end > hole.start {
            fs::punch_hole(file, &path, hole.start, hole.end - hole.start);
        }
        Ok((at, end))
    }
}
