//! `.numpack.history` and `.numpack.tags`: the version log numpack keeps beside the published
//! layout (docs/FORMAT.md, section "History"). Other readers ignore both files.
//!
//! ```text
//! header (64 bytes): "NPKH" | u32 format = 1 | u64 counter | u64 floor | u64 keep_last
//!                    | 32 zero bytes
//! record:            "NPKV" | u32 body length | u32 crc32(body) | u8 state | 3 zero bytes | body
//! body:  u64 version | u64 time (µs since the epoch) | u8 op | u32 crc32 of the metadata before
//!        | u32 crc32 of the metadata after
//!        | u32 n | n x (str array | u8 existed | [u32 len | metadata file of that one record])
//!        | u32 n | n x (str file | u8 before: 0 absent, 1 kept as `.numpack.v<version>.<file>`)
//!        | u32 n | n x (str data file | u64 row bytes | u64 rows | u32 crc32 old | u32 crc32 new
//!                     | rows x (u64 physical row | row bytes of the old row))
//! ```
//! A record holds what its commit changed, as it was before: the old records of the arrays
//! it touched, the data and bitmap files it replaced or removed (kept under a hard link), and
//! the old bytes of rows it overwrote in place. State 1 marks a record whose commit never
//! happened (a killed or failed mutation). Decoders check every length against the bytes
//! present and every name against the store's naming rules.

use super::cursor::Cursor;
use super::metadata::{ArrayMetadata, MetadataFile};
use super::names;
use std::collections::BTreeMap;

/// The version log.
pub const LOG_FILE: &str = ".numpack.history";
/// Tags: names of versions.
pub const TAGS_FILE: &str = ".numpack.tags";
/// Bytes of the log header.
pub const HEADER_BYTES: u64 = 64;
/// Offset of the counter word in the header.
pub const COUNTER_AT: u64 = 8;
/// Offset of the keep-last word in the header.
pub const KEEP_AT: u64 = 24;
/// Bytes before a record's body.
pub const RECORD_HEAD: usize = 16;
/// Offset of a record's state byte.
pub const STATE_AT: u64 = 12;
/// Largest version number read (far beyond any real store; keeps `+ 1` from overflowing).
pub const MAX_VERSION: u64 = 1 << 62;
/// Most tags a store keeps.
pub const MAX_TAGS: usize = 10_000;

const LOG_MAGIC: &[u8; 4] = b"NPKH";
const RECORD_MAGIC: &[u8; 4] = b"NPKV";
const TAGS_MAGIC: &[u8; 4] = b"NPKT";
const FORMAT: u32 = 1;

/// The log header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// The last version number given to a commit that wrote no record.
    pub counter: u64,
    /// The oldest version that can be read: records up to it were collected.
    pub floor: u64,
    /// Versions kept by default (0: history off).
    pub keep_last: u64,
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES as usize);
        out.extend_from_slice(LOG_MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        for w in [self.counter, self.floor, self.keep_last] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.resize(HEADER_BYTES as usize, 0);
        out
    }

    /// Decodes the header.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Cursor::new(bytes);
        if r.take(4)? != LOG_MAGIC {
            return Err("bad magic (expected 'NPKH')".into());
        }
        let format = r.u32()?;
        if format != FORMAT {
            return Err(format!("unsupported history format {format}"));
        }
        let h = Header {
            counter: r.u64()?,
            floor: r.u64()?,
            keep_last: r.u64()?,
        };
        if h.counter > MAX_VERSION || h.floor > MAX_VERSION {
            return Err(format!(
                "version counter {} or floor {} out of range",
                h.counter, h.floor
            ));
        }
        Ok(h)
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Anything else.
    Other = 0,
    /// `save`.
    Save = 1,
    /// `append`.
    Append = 2,
    /// `replace`.
    Replace = 3,
    /// `drop` of rows.
    DropRows = 4,
    /// `drop` of whole arrays.
    DropArrays = 5,
    /// `update` (compaction).
    Compact = 6,
    /// `reset`.
    Reset = 7,
    /// `clone`.
    Clone = 8,
    /// `restore`.
    Restore = 9,
}

impl Op {
    /// The operation's name, as listed by `versions()`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Other => "other",
            Op::Save => "save",
            Op::Append => "append",
            Op::Replace => "replace",
            Op::DropRows => "drop_rows",
            Op::DropArrays => "drop_arrays",
            Op::Compact => "update",
            Op::Reset => "reset",
            Op::Clone => "clone",
            Op::Restore => "restore",
        }
    }

    fn from_code(c: u8) -> Result<Self, String> {
        Ok(match c {
            0 => Op::Other,
            1 => Op::Save,
            2 => Op::Append,
            3 => Op::Replace,
            4 => Op::DropRows,
            5 => Op::DropArrays,
            6 => Op::Compact,
            7 => Op::Reset,
            8 => Op::Clone,
            9 => Op::Restore,
            _ => return Err(format!("unknown operation code {c}")),
        })
    }
}

/// The old bytes of rows a commit overwrote in one data file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    /// The data file, or the bitmap file (then the rows are its 8-byte words, the header's
    /// two included), bare name.
    pub file: String,
    /// Bytes of each row.
    pub row_bytes: u64,
    /// `(physical row, old bytes)`, ascending, each row once.
    pub rows: Vec<(u64, Vec<u8>)>,
    /// crc32 of the old rows' bytes, in order (tells an abandoned replace).
    pub old_crc: u32,
    /// crc32 of the new rows' bytes, in order (tells a committed one).
    pub new_crc: u32,
}

/// One commit of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The version this commit made.
    pub version: u64,
    /// When (µs since the epoch).
    pub time_us: u64,
    /// What it did.
    pub op: Op,
    /// The commit never happened (state byte 1).
    pub aborted: bool,
    /// crc32 of the metadata file before.
    pub pre_meta_crc: u32,
    /// crc32 of the metadata file after.
    pub post_meta_crc: u32,
    /// Every array the commit touched, with its record before (`None`: it did not exist).
    pub arrays: Vec<(String, Option<ArrayMetadata>)>,
    /// Every data or bitmap file the commit replaced, created or removed: `true` when it
    /// existed before (kept under [`kept_name`]).
    pub files: Vec<(String, bool)>,
    /// Rows overwritten in place.
    pub rows: Vec<RowSet>,
}

/// The name of a file kept for `version` (replaced or removed by that commit).
pub fn kept_name(version: u64, file: &str) -> String {
    format!(".numpack.v{version}.{file}")
}

/// The version and original file of a kept file's name.
pub fn parse_kept_name(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix(".numpack.v")?;
    let (v, file) = rest.split_once('.')?;
    let version = v.parse().ok().filter(|_| !v.starts_with('+'))?;
    (names::is_safe_data_file(file) || names::is_bitmap_file(file)).then_some((version, file))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Record {
    /// Encodes the record, head included.
    pub fn encode(&self) -> Vec<u8> {
        let rows: usize = self
            .rows
            .iter()
            .map(|s| 48 + s.file.len() + s.rows.len() * (8 + s.row_bytes as usize))
            .sum();
        let mut b = Vec::with_capacity(RECORD_HEAD + 64 + rows + self.arrays.len() * 160);
        b.resize(RECORD_HEAD, 0);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.time_us.to_le_bytes());
        b.push(self.op as u8);
        b.extend_from_slice(&self.pre_meta_crc.to_le_bytes());
        b.extend_from_slice(&self.post_meta_crc.to_le_bytes());
        b.extend_from_slice(&(self.arrays.len() as u32).to_le_bytes());
        for (name, rec) in &self.arrays {
            put_str(&mut b, name);
            match rec {
                None => b.push(0),
                Some(r) => {
                    b.push(1);
                    let one = MetadataFile {
                        arrays: BTreeMap::from([(r.name.clone(), r.clone())]),
                    }
                    .encode();
                    b.extend_from_slice(&(one.len() as u32).to_le_bytes());
                    b.extend_from_slice(&one);
                }
            }
        }
        b.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for (file, kept) in &self.files {
            put_str(&mut b, file);
            b.push(u8::from(*kept));
        }
        b.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        for s in &self.rows {
            put_str(&mut b, &s.file);
            b.extend_from_slice(&s.row_bytes.to_le_bytes());
            b.extend_from_slice(&(s.rows.len() as u64).to_le_bytes());
            b.extend_from_slice(&s.old_crc.to_le_bytes());
            b.extend_from_slice(&s.new_crc.to_le_bytes());
            for (r, old) in &s.rows {
                b.extend_from_slice(&r.to_le_bytes());
                b.extend_from_slice(old);
            }
        }
        let body = b.len() - RECORD_HEAD;
        let crc = crc32fast::hash(&b[RECORD_HEAD..]);
        b[..4].copy_from_slice(RECORD_MAGIC);
        b[4..8].copy_from_slice(&(body as u32).to_le_bytes());
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        b[12] = u8::from(self.aborted);
        b
    }

    fn decode_body(body: &[u8], aborted: bool) -> Result<Self, String> {
        let mut r = Cursor::new(body);
        let version = r.u64()?;
        if version == 0 || version > MAX_VERSION {
            return Err(format!("version {version} out of range"));
        }
        let time_us = r.u64()?;
        let op = Op::from_code(r.u8()?)?;
        let pre_meta_crc = r.u32()?;
        let post_meta_crc = r.u32()?;
        let n = r.u32()? as usize;
        if n > r.left() / 5 {
            return Err(format!("{n} arrays do not fit in the record"));
        }
        let mut arrays = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string()?;
            names::validate(&name).map_err(|e| e.to_string())?;
            let rec = match r.u8()? {
                0 => None,
                1 => {
                    let len = r.u32()? as usize;
                    let m = MetadataFile::decode(r.take(len)?)?;
                    let mut it = m.arrays.into_values();
                    match (it.next(), it.next()) {
                        (Some(a), None) if a.name == name => Some(a),
                        _ => return Err(format!("the old record of '{name}' is not one record")),
                    }
                }
                t => return Err(format!("array '{name}': bad presence byte {t}")),
            };
            arrays.push((name, rec));
        }
        let n = r.u32()? as usize;
        if n > r.left() / 5 {
            return Err(format!("{n} files do not fit in the record"));
        }
        let mut files = Vec::with_capacity(n);
        for _ in 0..n {
            let file = r.file_name()?;
            if !names::is_safe_data_file(&file) && !names::is_bitmap_file(&file) {
                return Err(format!("{file:?} is not a data or bitmap file name"));
            }
            let kept = match r.u8()? {
                0 => false,
                1 => true,
                t => return Err(format!("file {file:?}: bad state byte {t}")),
            };
            files.push((file, kept));
        }
        let n = r.u32()? as usize;
        if n > r.left() / 28 {
            return Err(format!("{n} row sets do not fit in the record"));
        }
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let file = r.file_name()?;
            if !names::is_safe_data_file(&file) && !names::is_bitmap_file(&file) {
                return Err(format!("{file:?} is not a data or bitmap file name"));
            }
            let row_bytes = r.u64()?;
            let count = r.u64()?;
            let (old_crc, new_crc) = (r.u32()?, r.u32()?);
            let each = row_bytes.checked_add(8).filter(|_| row_bytes > 0);
            let fits = each.and_then(|e| e.checked_mul(count));
            if fits.is_none_or(|need| need > r.left() as u64) {
                return Err(format!(
                    "{count} rows of {row_bytes} bytes of {file} do not fit in the record"
                ));
            }
            let mut set = Vec::with_capacity(count as usize);
            let mut last = None;
            for _ in 0..count {
                let row = r.u64()?;
                if last.is_some_and(|l| row <= l) {
                    return Err(format!("rows of {file} are not ascending"));
                }
                last = Some(row);
                set.push((row, r.take(row_bytes as usize)?.to_vec()));
            }
            rows.push(RowSet {
                file,
                row_bytes,
                rows: set,
                old_crc,
                new_crc,
            });
        }
        r.finish()?;
        Ok(Record {
            version,
            time_us,
            op,
            aborted,
            pre_meta_crc,
            post_meta_crc,
            arrays,
            files,
            rows,
        })
    }

    /// Bytes the record takes in the log (kept files not included).
    pub fn payload_bytes(&self) -> u64 {
        self.encode().len() as u64
    }
}

/// A decoded log: the header and every complete record with its offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    /// The header.
    pub header: Header,
    /// `(offset, record)`, versions ascending.
    pub records: Vec<(u64, Record)>,
    /// Where the complete records end (a torn or foreign tail starts here).
    pub end: u64,
}

/// Decodes the records in `bytes` (starting at file offset `at`), stopping at the first
/// incomplete one: a record being appended, or the tail of a killed append. Versions must
/// ascend after `last`; a record that breaks that is corruption.
pub fn decode_records(
    bytes: &[u8],
    at: u64,
    mut last: Option<u64>,
) -> Result<(Vec<(u64, Record)>, u64), String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= RECORD_HEAD {
        let head = &bytes[pos..pos + RECORD_HEAD];
        if &head[..4] != RECORD_MAGIC {
            break;
        }
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(pos + RECORD_HEAD..pos + RECORD_HEAD + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let aborted = match head[12] {
            0 => false,
            1 => true,
            s => return Err(format!("record at {}: bad state byte {s}", at + pos as u64)),
        };
        let rec = Record::decode_body(body, aborted)
            .map_err(|e| format!("record at {}: {e}", at + pos as u64))?;
        if last.is_some_and(|l| rec.version <= l) {
            return Err(format!(
                "record at {}: version {} after version {}",
                at + pos as u64,
                rec.version,
                last.unwrap_or(0)
            ));
        }
        last = Some(rec.version);
        out.push((at + pos as u64, rec));
        pos += RECORD_HEAD + len;
    }
    Ok((out, at + pos as u64))
}

impl Log {
    /// Decodes a whole log file.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let head = bytes
            .get(..HEADER_BYTES as usize)
            .ok_or_else(|| format!("{} bytes, shorter than its header", bytes.len()))?;
        let header = Header::decode(head)?;
        let (records, end) = decode_records(&bytes[HEADER_BYTES as usize..], HEADER_BYTES, None)?;
        Ok(Log {
            header,
            records,
            end,
        })
    }

    /// The newest version the log knows of.
    pub fn last_version(&self) -> u64 {
        let tail = self.records.last().map_or(0, |(_, r)| r.version);
        tail.max(self.header.counter).max(self.header.floor)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DataType;

    fn sample() -> Record {
        Record {
            version: 7,
            time_us: 123,
            op: Op::Replace,
            aborted: false,
            pre_meta_crc: 1,
            post_meta_crc: 2,
            arrays: vec![
                (
                    "a".into(),
                    Some(ArrayMetadata::new(
                        "a",
                        vec![3, 2],
                        DataType::Float32,
                        "data_a.npkd".into(),
                        5,
                    )),
                ),
                ("b".into(), None),
            ],
            files: vec![
                ("deleted_a.npkb".into(), true),
                ("data_b.npkd".into(), false),
            ],
            rows: vec![RowSet {
                file: "data_a.npkd".into(),
                row_bytes: 8,
                rows: vec![(0, vec![1; 8]), (2, vec![2; 8])],
                old_crc: 3,
                new_crc: 4,
            }],
        }
    }

    #[test]
    fn records_round_trip_and_every_prefix_stops_cleanly() {
        let rec = sample();
        let mut second = sample();
        second.version = 8;
        let mut log = Header::default().encode();
        log.extend(rec.encode());
        log.extend(second.encode());
        let decoded = Log::decode(&log).unwrap();
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.records[0].1, rec);
        assert_eq!(decoded.end, log.len() as u64);
        for n in HEADER_BYTES as usize..log.len() {
            let d = Log::decode(&log[..n]).unwrap();
            assert!(d.records.len() < 2, "prefix {n}");
            assert!(d.end <= n as u64);
        }
        // Versions must ascend.
        let mut twice = Header::default().encode();
        twice.extend(second.encode());
        twice.extend(rec.encode());
        assert!(Log::decode(&twice).is_err());
    }

    #[test]
    fn kept_names_and_tags() {
        assert_eq!(kept_name(3, "data_a.npkd"), ".numpack.v3.data_a.npkd");
        assert_eq!(
            parse_kept_name(".numpack.v3.data_a.npkd"),
            Some((3, "data_a.npkd"))
        );
        assert_eq!(parse_kept_name(".numpack.v3.metadata.npkm"), None);
        assert_eq!(parse_kept_name(".numpack.v+3.data_a.npkd"), None);
        let tags = BTreeMap::from([("good".to_owned(), 4u64)]);
        assert_eq!(decode_tags(&encode_tags(&tags)).unwrap(), tags);
        assert!(check_tag("12").is_err() && check_tag("").is_err() && check_tag("a@b").is_err());
    }

    #[test]
    fn damaged_logs_and_tags_decode_to_errors_or_fewer_records() {
        let mut log = Header::default().encode();
        log.extend(sample().encode());
        let tags = encode_tags(&BTreeMap::from([("good".to_owned(), 4u64)]));
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for base in [&log, &tags] {
                let mut b = base.clone();
                let at = (x as usize) % b.len();
                b[at] ^= 1 << (x >> 60 & 7);
                if x & 1 == 0 {
                    b.truncate(at);
                }
                // Never a panic; a log keeps at most its one record.
                if let Ok(l) = Log::decode(&b) {
                    assert!(l.records.len() <= 1);
                }
                let _ = decode_tags(&b);
            }
        }
    }
}
