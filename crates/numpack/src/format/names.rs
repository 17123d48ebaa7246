//! Array name → file name rules (FORMAT.md, "Names").
//!
//! Names of `[A-Za-z0-9_.-]` not starting with `.` map to `data_<name>.npkd` exactly (the
//! published naming). Every other name is encoded into a short, safe file name that cannot
//! leave the directory; the metadata record's `data_file` says where the data is.

use crate::error::{NpkError, NpkResult};

/// Longest name that keeps the published file naming (file names stay under 255 bytes).
const MAX_PLAIN_LEN: usize = 200;

/// Checks that `name` can be stored: non-empty, no NUL, at most 1 MiB of UTF-8.
pub fn validate(name: &str) -> NpkResult<()> {
    if name.is_empty() {
        return Err(NpkError::InvalidArrayName("the name is empty".into()));
    }
    if name.len() > super::cursor::MAX_STRING {
        return Err(NpkError::InvalidArrayName(format!(
            "the name is {} bytes long (at most {})",
            name.len(),
            super::cursor::MAX_STRING
        )));
    }
    if name.contains('\0') {
        return Err(NpkError::InvalidArrayName(format!(
            "{:?} contains a NUL character",
            name
        )));
    }
    Ok(())
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PLAIN_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The file stem for a name: the name itself when plain, else `~<safe prefix>-<hash>`
/// (`~` never occurs in a plain name, so the two families cannot collide). `salt` varies
/// the hash when a stem is already taken.
pub fn stem(name: &str, salt: u32) -> String {
    if is_plain(name) && salt == 0 {
        return name.to_owned();
    }
    let prefix: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .take(40)
        .collect();
    // FNV-1a: stable across builds; the stem is stored in the metadata anyway.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain(salt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("~{prefix}-{h:016x}")
}

/// `data_<stem>.npkd`.
pub fn data_file(stem: &str) -> String {
    format!("data_{stem}.npkd")
}

/// `data_<stem>.npkseg`: the manifest of an array kept in segments (the published 0.7
/// layout for large arrays; FORMAT.md, "Segmented arrays").
pub fn manifest_file(stem: &str) -> String {
    format!("data_{stem}.npkseg")
}

/// The stem of a data file name: `data_<stem>.npkd` or `data_<stem>.npkseg`.
pub fn data_stem(data_file: &str) -> Option<&str> {
    let rest = data_file.strip_prefix("data_")?;
    rest.strip_suffix(".npkd")
        .or_else(|| rest.strip_suffix(".npkseg"))
        .filter(|s| !s.is_empty())
}

/// Whether a data file name is a segment manifest (`data_<stem>.npkseg`).
pub fn is_manifest(data_file: &str) -> bool {
    data_file.ends_with(".npkseg") && data_stem(data_file).is_some()
}

/// `data_<stem>_segments`: the folder of a segmented array's segment files.
pub fn segment_dir(stem: &str) -> String {
    format!("data_{stem}_segments")
}

/// `data_<stem>_segments/seg_<i, 6 digits>.npkd`: segment `i` of a segmented array.
pub fn segment_file(stem: &str, i: usize) -> String {
    format!("{}/seg_{i:06}.npkd", segment_dir(stem))
}

/// The segment number of `file` when it is exactly `data_<stem>_segments/seg_<digits>.npkd`
/// for this stem (at least 6 digits, no other path component): the only paths a manifest
/// may name, so a crafted one cannot reach outside its folder.
pub fn segment_number(stem: &str, file: &str) -> Option<usize> {
    let (dir, base) = file.split_once('/')?;
    if dir != segment_dir(stem) {
        return None;
    }
    let digits = base.strip_prefix("seg_")?.strip_suffix(".npkd")?;
    if digits.len() < 6 || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `deleted_<stem>.npkb` for the data file `data_<stem>.npkd` (or `.npkseg`).
pub fn bitmap_file(data_file: &str) -> Option<String> {
    Some(format!("deleted_{}.npkb", data_stem(data_file)?))
}

/// `index_<stem>.npki` (a vector index's base file) for the data file `data_<stem>.npkd`.
pub fn index_file(data_file: &str) -> Option<String> {
    Some(format!("index_{}.npki", data_stem(data_file)?))
}

/// `index_<stem>.npkx` (a vector index's delta log) for the data file `data_<stem>.npkd`.
pub fn index_log_file(data_file: &str) -> Option<String> {
    Some(format!("index_{}.npkx", data_stem(data_file)?))
}

/// `attrs_<stem>.npka` (an array's attributes, JSON) for the data file `data_<stem>.npkd`.
pub fn attrs_file(data_file: &str) -> Option<String> {
    Some(format!("attrs_{}.npka", data_stem(data_file)?))
}

/// Whether `file` is an attributes file name (`attrs_*.npka`, bare).
pub fn is_attrs_file(file: &str) -> bool {
    file.starts_with("attrs_")
        && file.ends_with(".npka")
        && file.len() > "attrs_.npka".len()
        && super::cursor::is_bare_name(file)
}

/// Whether `file` is a vector index file name (`index_*.npki` or `index_*.npkx`, bare).
pub fn is_index_file(file: &str) -> bool {
    file.starts_with("index_")
        && (file.ends_with(".npki") || file.ends_with(".npkx"))
        && file.len() > "index_.npki".len()
        && super::cursor::is_bare_name(file)
}

/// Whether `file` is a vector index's delta log name (`index_*.npkx`, bare).
pub fn is_index_log_file(file: &str) -> bool {
    is_index_file(file) && file.ends_with(".npkx")
}

/// Whether a data file name read from metadata is a bare file name of the `data_*.npkd`
/// family (or a `data_*.npkseg` manifest): no separator or NUL, so joined to the store
/// directory it stays inside it.
pub fn is_safe_data_file(file: &str) -> bool {
    data_stem(file).is_some() && super::cursor::is_bare_name(file)
}

/// Whether `file` is a bitmap file name (`deleted_*.npkb`, bare).
pub fn is_bitmap_file(file: &str) -> bool {
    file.starts_with("deleted_")
        && file.ends_with(".npkb")
        && file.len() > "deleted_.npkb".len()
        && super::cursor::is_bare_name(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_keep_the_published_naming() {
        assert_eq!(data_file(&stem("emb_1.v2-x", 0)), "data_emb_1.v2-x.npkd");
        assert_eq!(bitmap_file("data_emb.npkd").unwrap(), "deleted_emb.npkb");
        assert_eq!(index_file("data_emb.npkd").unwrap(), "index_emb.npki");
        assert!(is_index_file("index_emb.npkx") && is_index_log_file("index_emb.npkx"));
        assert!(!is_index_file("index_.npki") && !is_index_file("index_a/b.npki"));
    }

    #[test]
    fn hostile_names_become_safe_files() {
        let long = "x".repeat(1000);
        for name in [
            "../x",
            "a/b",
            "/abs",
            "名前",
            ".hidden",
            long.as_str(),
            "a\\b",
        ] {
            let f = data_file(&stem(name, 0));
            assert!(is_safe_data_file(&f), "{f}");
            assert!(f.len() < 100, "{f}");
            assert!(f.starts_with("data_~"));
        }
        assert_ne!(stem("../x", 0), stem("../x", 1));
        assert!(validate("").is_err());
        assert!(validate("a\0b").is_err());
        assert!(!is_safe_data_file("data_../../x.npkd"));
        assert!(is_safe_data_file("data_a..b.npkd"));
        assert!(!is_safe_data_file("data_a/b.npkd"));
        assert!(is_safe_data_file("data_a.npkseg") && is_manifest("data_a.npkseg"));
        assert!(!is_safe_data_file("data_.npkseg") && !is_manifest("data_a.npkd"));
    }

    #[test]
    fn segment_paths_stay_in_their_folder() {
        assert_eq!(segment_file("emb", 3), "data_emb_segments/seg_000003.npkd");
        assert_eq!(
            segment_number("emb", "data_emb_segments/seg_000003.npkd"),
            Some(3)
        );
        assert_eq!(
            segment_number("emb", "data_emb_segments/seg_1234567.npkd"),
            Some(1234567)
        );
        for bad in [
            "data_emb_segments/../x.npkd",
            "data_emb_segments/seg_000003.npkd/x",
            "data_other_segments/seg_000003.npkd",
            "/data_emb_segments/seg_000003.npkd",
            "data_emb_segments/seg_00003.npkd",
            "data_emb_segments/seg_+00003.npkd",
            "data_emb_segments//seg_000003.npkd",
            "data_emb_segments/seg_000003.npkd\0",
        ] {
            assert_eq!(segment_number("emb", bad), None, "{bad}");
        }
    }
}
