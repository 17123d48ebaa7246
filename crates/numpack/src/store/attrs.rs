//! Array attributes: a JSON object per array in `attrs_<stem>.npka`, written under the
//! store lock and renamed into place by the commit (a kill leaves the old or the new ones),
//! removed with the array, carried by `clone`, `pack` and compaction (which keeps the stem).
//! Not versioned: a snapshot shows the current attributes.

use super::commit::Txn;
use super::Store;
use crate::error::{NpkError, NpkResult};
use crate::format::attrs::{self, Attrs, MAX_ATTRS_BYTES};
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::io::fs;
use std::path::Path;

/// The attributes of array `a` in `dir` (empty when it has none).
pub fn read(dir: &Path, a: &ArrayMetadata) -> NpkResult<Attrs> {
    let Some(file) = names::attrs_file(&a.data_file) else {
        return Ok(Attrs::new());
    };
    let path = dir.join(file);
    match fs::read_bounded(&path, MAX_ATTRS_BYTES as u64)? {
        None => Ok(Attrs::new()),
        Some(b) => attrs::decode(&b).map_err(|e| {
            NpkError::corrupt(
                &path,
                format!(
                    "attributes of array '{}' {e}; remove the file (or set the attributes \
                     again) to clear them",
                    a.name
                ),
            )
        }),
    }
}

/// In `txn`: array `a`'s attributes become `new` (the file removed when it is empty).
pub(crate) fn stage(txn: &mut Txn<'_>, a: &ArrayMetadata, new: &Attrs) -> NpkResult<()> {
    let Some(file) = names::attrs_file(&a.data_file) else {
        return Ok(());
    };
    if new.is_empty() {
        if fs::entry(&txn.dir().join(&file))?.is_some() {
            txn.stage_remove(&file);
        }
        return Ok(());
    }
    let bytes = check(&a.name, new)?;
    let tmp = txn.stage_file(&file);
    fs::write_new(&tmp, &bytes, false)?;
    Ok(())
}

/// The encoded attributes, or the error for attributes over the limit.
fn check(name: &str, new: &Attrs) -> NpkResult<Vec<u8>> {
    attrs::encode(new).map_err(|n| too_big(name, n))
}

fn too_big(name: &str, n: usize) -> NpkError {
    NpkError::InvalidOperation(format!(
        "the attributes of array '{name}' would take {n} bytes of JSON; at most \
             {MAX_ATTRS_BYTES} (1 MiB) are kept per array: store large values as arrays"
    ))
}

/// In `txn`: a stale attributes file under the stem of new array file `data_file` (left by
/// a killed earlier array) is removed.
pub(crate) fn forget(txn: &mut Txn<'_>, data_file: &str) {
    if let Some(file) = names::attrs_file(data_file) {
        if !matches!(fs::entry(&txn.dir().join(&file)), Ok(None)) {
            txn.stage_remove(&file);
        }
    }
}

/// Parses attributes given as JSON text (a JSON object).
pub(crate) fn parse(name: &str, json: &str) -> NpkResult<Attrs> {
    if json.len() > MAX_ATTRS_BYTES {
        return Err(too_big(name, json.len()));
    }
    let m = attrs::decode(json.as_bytes()).map_err(|e| {
        NpkError::InvalidOperation(format!(
            "attributes for array '{name}': the value {e}; attributes are a JSON object of \
             JSON values"
        ))
    })?;
    check(name, &m)?;
    Ok(m)
}

impl Store {
    /// The attributes of array `name`, as JSON text of an object (`{}` when none).
    pub fn attrs(&self, name: &str) -> NpkResult<String> {
        let a = self.array_metadata(name)?;
        let m = read(self.dir(), &a)?;
        Ok(serde_json::to_string(&m).expect("JSON values encode"))
    }

    /// Changes the attributes of array `name` in one commit: with `replace` they become
    /// `set` (JSON text of an object), else the keys of `set` are set and those of `remove`
    /// removed (missing ones ignored). At most 1 MiB of JSON per array.
    pub fn update_attrs(
        &self,
        name: &str,
        set: &str,
        remove: &[String],
        replace: bool,
    ) -> NpkResult<()> {
        let set = parse(name, set)?;
        self.mutate(|txn| {
            let a = txn.record(name)?;
            let mut now = if replace {
                Attrs::new()
            } else {
                read(txn.dir(), &a)?
            };
            for k in remove {
                now.shift_remove(k);
            }
            now.extend(set);
            stage(txn, &a, &now)?;
            if let Some(f) = names::attrs_file(&a.data_file) {
                self.mark_dirty(txn.dir().join(f));
            }
            Ok(())
        })
    }
}
