//! A package's members checked against its own metadata: before extraction (the member
//! table: nothing a record does not name, nothing missing, sizes bounded by the records) and
//! after it (the unpacked store verifies).

use super::entry::PackageInfo;
use crate::error::{NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::format::names;
use crate::read::deleted::{is_zero_width, ZERO_WIDTH_BITMAP_ROWS};
use crate::store::commit::METADATA;
use crate::store::verify::verify_dir;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Checks the member table against the metadata before anything is extracted: every data or
/// bitmap member belongs to a record, every record's data file is there with exactly its
/// committed size, and no bitmap is larger than its array's rows need. So the bytes an
/// unpack writes are bounded by what the metadata describes.
pub(super) fn check_members(
    source: &Path,
    info: &PackageInfo,
    meta: &MetadataFile,
) -> NpkResult<()> {
    let bad = |why: String| NpkError::corrupt(source, why);
    let mut data: HashMap<&str, &ArrayMetadata> = HashMap::new();
    let mut bitmaps: HashMap<String, &ArrayMetadata> = HashMap::new();
    let mut attrs: HashSet<String> = HashSet::new();
    for a in meta.arrays.values() {
        data.insert(a.data_file.as_str(), a);
        attrs.extend(names::attrs_file(&a.data_file));
        if let Some(b) = names::bitmap_file(&a.data_file) {
            bitmaps.insert(b, a);
        }
    }
    let mut present = HashSet::new();
    for e in &info.entries {
        if e.name == METADATA {
            continue;
        }
        if let Some(a) = data.get(e.name.as_str()) {
            if e.original_size != a.size_bytes {
                return Err(bad(format!(
                    "member {:?} is {} bytes, but array '{}' needs {}",
                    e.name, e.original_size, a.name, a.size_bytes
                )));
            }
            present.insert(e.name.as_str());
        } else if let Some(a) = bitmaps.get(&e.name) {
            let rows = if is_zero_width(a) {
                a.rows().min(ZERO_WIDTH_BITMAP_ROWS)
            } else {
                a.rows()
            };
            let max = Bitmap::max_file_len(rows);
            if e.original_size > max {
                return Err(bad(format!(
                    "member {:?} is {} bytes, more than the bitmap of array '{}' can be ({max})",
                    e.name, e.original_size, a.name
                )));
            }
        } else if attrs.contains(&e.name) {
            // Decoded by the unpacked store's verification.
            let max = crate::format::attrs::MAX_ATTRS_BYTES as u64;
            if e.original_size > max {
                return Err(bad(format!(
                    "member {:?} is {} bytes, more than attributes can be ({max})",
                    e.name, e.original_size
                )));
            }
        } else {
            return Err(bad(format!(
                "member {:?} belongs to no array of the package's metadata",
                e.name
            )));
        }
    }
    if let Some(a) = meta
        .arrays
        .values()
        .find(|a| !present.contains(a.data_file.as_str()))
    {
        return Err(bad(format!(
            "the data file {} of array '{}' is missing from the package",
            a.data_file, a.name
        )));
    }
    Ok(())
}

/// A bitmap member must decode for the rows of the array it belongs to (as `verify_dir`
/// checks it after an unpack).
pub(super) fn check_bitmap(
    source: &Path,
    meta: &MetadataFile,
    name: &str,
    bytes: &[u8],
) -> NpkResult<()> {
    let Some(a) = meta
        .arrays
        .values()
        .find(|a| names::bitmap_file(&a.data_file).as_deref() == Some(name))
    else {
        return Ok(());
    };
    let decoded = if a.shape.is_empty() {
        Err("a 0-d array has no rows to delete".to_owned())
    } else if is_zero_width(a) {
        Bitmap::count_active(bytes, a.rows()).map(|_| ())
    } else {
        Bitmap::decode(bytes, a.rows()).map(|_| ())
    };
    decoded.map_err(|why| NpkError::corrupt(source, format!("member {name:?}: {why}")))
}

/// After extraction: the unpacked directory must be a valid store (bitmaps decode and fit).
pub(super) fn check_store(source: &Path, dir: &Path) -> NpkResult<()> {
    let report = verify_dir(dir);
    match report.problems.first() {
        None => Ok(()),
        Some(p) => Err(NpkError::corrupt(
            source,
            format!("the unpacked store is not valid: {p}"),
        )),
    }
}
