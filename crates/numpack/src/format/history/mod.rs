//! `.numpack.history` and `.numpack.tags`: the version log numpack keeps beside the published
//! layout (docs/FORMAT.md, section "History"). Other readers ignore both files.
//!
//! ```text
//! header (64 bytes): "NPKH" | u32 format = 1 | u64 counter | u64 floor | u64 keep_last
//!                    | u64 start (offset of the first live record; 0: 64) | 24 zero bytes
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

mod record;
mod tags;

pub use record::{kept_name, parse_kept_name, Op, Record, RowSet};
pub use tags::{check_tag, decode_tags, encode_tags};

use super::cursor::Cursor;

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
/// Offset of the start word in the header.
pub const START_AT: u64 = 32;
/// Bytes before a record's body.
pub const RECORD_HEAD: usize = 16;
/// Offset of a record's state byte.
pub const STATE_AT: u64 = 12;
/// Largest version number read (far beyond any real store; keeps `+ 1` from overflowing).
pub const MAX_VERSION: u64 = 1 << 62;
/// Largest start offset read (a log is read up to 16 GiB).
const MAX_START: u64 = 1 << 40;
/// Most tags a store keeps.
pub const MAX_TAGS: usize = 10_000;

const LOG_MAGIC: &[u8; 4] = b"NPKH";
const RECORD_MAGIC: &[u8; 4] = b"NPKV";
const TAGS_MAGIC: &[u8; 4] = b"NPKT";
const FORMAT: u32 = 1;

/// The log header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The last version number given to a commit that wrote no record.
    pub counter: u64,
    /// The oldest version that can be read: records up to it were collected.
    pub floor: u64,
    /// Versions kept by default (0: history off).
    pub keep_last: u64,
    /// Where the first live record starts: the bytes between the header and it belong to
    /// collected records (or are a hole punched where they were).
    pub start: u64,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            counter: 0,
            floor: 0,
            keep_last: 0,
            start: HEADER_BYTES,
        }
    }
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES as usize);
        out.extend_from_slice(LOG_MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        let start = if self.start == HEADER_BYTES {
            0
        } else {
            self.start
        };
        for w in [self.counter, self.floor, self.keep_last, start] {
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
            start: match r.u64()? {
                0 => HEADER_BYTES,
                s => s,
            },
        };
        if h.start < HEADER_BYTES || h.start > MAX_START {
            return Err(format!(
                "first record at {}, inside the header or out of range",
                h.start
            ));
        }
        if h.counter > MAX_VERSION || h.floor > MAX_VERSION {
            return Err(format!(
                "version counter {} or floor {} out of range",
                h.counter, h.floor
            ));
        }
        Ok(h)
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
    last: Option<u64>,
) -> Result<(Vec<(u64, Record)>, u64), String> {
    decode_while(bytes, at, last, |_| true)
}

/// The records at the front of `bytes` up to version `floor`: what a collection to `floor`
/// frees, and where the first record after it starts.
pub fn decode_through(
    bytes: &[u8],
    at: u64,
    floor: u64,
) -> Result<(Vec<(u64, Record)>, u64), String> {
    decode_while(bytes, at, None, |v| v <= floor)
}

fn decode_while(
    bytes: &[u8],
    at: u64,
    mut last: Option<u64>,
    more: impl Fn(u64) -> bool,
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
        if body.len() >= 8 && !more(u64::from_le_bytes(body[..8].try_into().expect("8 bytes"))) {
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
        let live = usize::try_from(header.start)
            .ok()
            .and_then(|s| bytes.get(s..))
            .ok_or_else(|| format!("first record at {}, past the end", header.start))?;
        Self::decode_live(header, live)
    }

    /// Decodes the log from its header and the bytes from the header's start on.
    pub fn decode_live(header: Header, live: &[u8]) -> Result<Self, String> {
        let (records, end) = decode_records(live, header.start, None)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DataType;
    use crate::format::metadata::ArrayMetadata;
    use std::collections::BTreeMap;

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
                rows: vec![0, 2],
                old: [[1u8; 8], [2u8; 8]].concat(),
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
