//! All-or-nothing mutations: temp files, a journal of renames/removals, undo records, and
//! recovery. One file per part: the transaction ([`txn`]), the redo journal ([`journal`]),
//! the undo record of in-place writes ([`undo`]) and recovery ([`mod@recover`]); their decoders
//! share the byte cursor of `format/` and are fuzzed one by one.
//!
//! A mutation writes every new file under a temporary name, then commits:
//! - new files go onto names no record refers to yet (a crash leaves an orphan, which no
//!   reader sees and the next save of that name replaces);
//! - one further step (e.g. only `metadata.npkm` changes): a single `rename`, atomic by
//!   itself, is the commit point;
//! - several steps: the list is first written to `.numpack.journal` (temp + rename, the
//!   commit point), then applied, then the journal is removed. A crash before the journal
//!   exists leaves only temp files (removed on the next open); after it, the next writer
//!   replays the journal (every step is idempotent).
//!
//! A commit whose only change is a same-length metadata edit within one page (an append) is
//! written in place by one `pwrite`, which a killed process cannot tear (the kernel copies a
//! write within one page entirely or not at all). Durable stores always use the rename.
//!
//! In-place row replacement uses an undo record instead: the old bytes of every touched row
//! are recorded before the rows are overwritten, and recovery writes them back. Small records
//! live in the lock file (no file to create); large ones, and those of durable stores, in
//! `.numpack.journal`. Flags in the lock file's header say when either may need recovery, so
//! the common path does not look for a journal at all.
//!
//! **Durability** (`durable`): every byte a commit depends on is on stable storage before its
//! commit point, and the commit point itself before the call returns. docs/storage.md lists
//! the order of each mutation; the power-loss tests check it from a trace of the calls.

pub mod journal;
pub mod recover;
pub mod txn;
pub mod undo;

pub use recover::{may_need_recovery, needs_recovery, recover, remove_stale_temps};
pub use txn::{MetaBase, MetaWrite, Txn};
pub use undo::{begin_undo, finish_undo, UndoFile, UndoLog, UndoSlot};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The journal file name.
pub const JOURNAL: &str = ".numpack.journal";
/// Prefix of every temporary file numpack writes.
pub const TMP_PREFIX: &str = ".numpack.tmp.";
/// The metadata file name.
pub const METADATA: &str = "metadata.npkm";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temporary path in `dir` for a file that will become `final_name`.
pub fn tmp_path(dir: &Path, final_name: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let short: String = final_name.chars().take(60).collect();
    dir.join(format!("{TMP_PREFIX}{}.{n}.{short}", std::process::id()))
}

/// Whether `name` is a temporary file name of numpack's.
pub fn is_tmp_name(name: &str) -> bool {
    name.starts_with(TMP_PREFIX) && crate::format::cursor::is_bare_name(name)
}

/// fsync of a directory, so renames in it are durable.
pub fn sync_dir(dir: &Path) -> crate::error::NpkResult<()> {
    crate::io::fs::sync_dir(dir)
}
