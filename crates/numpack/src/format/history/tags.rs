//! `.numpack.tags`: names of versions.

use super::record::put_str;
use super::{MAX_TAGS, MAX_VERSION, TAGS_MAGIC};
use crate::format::cursor::Cursor;
use std::collections::BTreeMap;

/// Checks a tag name: 1 to 128 bytes, no control characters, not all digits (those read as
/// version numbers).
pub fn check_tag(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("tag {name:?} must be 1 to 128 bytes"));
    }
    if name.chars().any(char::is_control) || name.contains('@') {
        return Err(format!("tag {name:?} contains a control character or '@'"));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "tag {name:?} is all digits, which would read as a version number"
        ));
    }
    Ok(())
}

/// Encodes the tags file.
pub fn encode_tags(tags: &BTreeMap<String, u64>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(TAGS_MAGIC);
    out.extend_from_slice(&(tags.len() as u32).to_le_bytes());
    for (name, v) in tags {
        put_str(&mut out, name);
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes the tags file.
pub fn decode_tags(bytes: &[u8]) -> Result<BTreeMap<String, u64>, String> {
    let mut r = Cursor::new(bytes);
    if r.take(4)? != TAGS_MAGIC {
        return Err("bad magic (expected 'NPKT')".into());
    }
    let n = r.u32()? as usize;
    if n > MAX_TAGS || n > r.left() / 13 {
        return Err(format!("{n} tags do not fit in the file"));
    }
    let mut tags = BTreeMap::new();
    for _ in 0..n {
        let name = r.string()?;
        check_tag(&name)?;
        let v = r.u64()?;
        if v > MAX_VERSION {
            return Err(format!("tag {name:?} names version {v}, out of range"));
        }
        if tags.insert(name.clone(), v).is_some() {
            return Err(format!("tag {name:?} given twice"));
        }
    }
    r.finish()?;
    Ok(tags)
}
