//! The delta log of a vector index (`index_<stem>.npkx`, numpack's own): what the commits
//! of the array did to the index since its base file (`index_<stem>.npki`) was written. All
//! integers little-endian.
//!
//! ```text
//! header: "NPKX" | u32 format 1 | u32 the base file's own crc32 (its last 4 bytes)
//!         | u32 crc32 of these 12 bytes
//! record: u32 body length | body | u32 crc32 of the body
//! body:   u8 kind
//!   1 rows added:    u64 stamp | u64 first row | u64 n | n x u64 row | n x u32 list
//!   2 rows moved:    u64 n | n x u64 row | n x u32 list
//!   3 stamp:         u64 stamp
//! ```
//!
//! Records hold no vectors: a row's copy in the index is its vector in the array as
//! committed, read from there when the record is applied (a later replace of the row has a
//! later record, which places it again).
//!
//! A log follows one base file: a header naming another base's checksum makes the whole
//! log void. Records are read up to the first that is torn or fails its checksum (the tail a
//! killed writer left; the next writer cuts it off). A record that passes its checksum but
//! names a list or row out of bounds is corruption.

use super::cursor::Cursor;

const MAGIC: &[u8; 4] = b"NPKX";
const FORMAT: u32 = 1;
/// Bytes of the header.
pub const HEADER: usize = 16;
/// Rows per record an encoder writes (a large append is several records).
pub const ROWS_PER_RECORD: usize = 1 << 16;

/// One commit's change to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Rows appended: every listed row at or past `first` is an uncommitted leftover and
    /// goes first; then `rows[i]` joins list `lists[i]`. `stamp` is the array's
    /// `last_modified` after the commit.
    Added {
        /// The array's `last_modified` after the commit.
        stamp: u64,
        /// The array's physical row count before the commit.
        first: u64,
        /// Physical rows.
        rows: Vec<u64>,
        /// Their lists.
        lists: Vec<u32>,
    },
    /// Rows replaced: each leaves its list and joins `lists[i]` with its new vector.
    Moved {
        /// Physical rows.
        rows: Vec<u64>,
        /// Their new lists.
        lists: Vec<u32>,
    },
    /// A commit that changed the array's `last_modified` and nothing the index holds (a
    /// drop of rows: liveness is the array's bitmap).
    Stamp(u64),
}

/// The header of a log following the base whose crc32 is `base_crc`.
pub fn header(base_crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&base_crc.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn frame(body: Vec<u8>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
}

fn entries(body: &mut Vec<u8>, rows: &[u64], lists: &[u32]) {
    body.reserve(8 + rows.len() * 12);
    body.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    for r in rows {
        body.extend_from_slice(&r.to_le_bytes());
    }
    for l in lists {
        body.extend_from_slice(&l.to_le_bytes());
    }
}

/// The bytes of `rec`, split into records of at most [`ROWS_PER_RECORD`] rows.
pub fn encode(rec: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    match rec {
        Record::Stamp(s) => {
            let mut body = vec![3u8];
            body.extend_from_slice(&s.to_le_bytes());
            frame(body, &mut out);
        }
        Record::Added {
            stamp,
            first,
            rows,
            lists,
        } => {
            for (i, part) in rows.chunks(ROWS_PER_RECORD).enumerate() {
                let at = i * ROWS_PER_RECORD;
                let mut body = vec![1u8];
                body.extend_from_slice(&stamp.to_le_bytes());
                // Later parts start past the earlier ones: nothing of this commit goes.
                let from = if i == 0 { *first } else { part[0].max(*first) };
                body.extend_from_slice(&from.to_le_bytes());
                entries(&mut body, part, &lists[at..at + part.len()]);
                frame(body, &mut out);
            }
        }
        Record::Moved { rows, lists } => {
            for (i, part) in rows.chunks(ROWS_PER_RECORD).enumerate() {
                let at = i * ROWS_PER_RECORD;
                let mut body = vec![2u8];
                entries(&mut body, part, &lists[at..at + part.len()]);
                frame(body, &mut out);
            }
        }
    }
    out
}

/// What bounds a log's records: the index's lists and the array's physical rows.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Lists of the index.
    pub nlist: u32,
    /// Physical rows of the array.
    pub rows: u64,
}

/// Whether `bytes` start with the header of a log following the base of crc32 `base_crc`
/// (else the log is void).
pub fn follows(bytes: &[u8], base_crc: u32) -> bool {
    bytes.len() >= HEADER
        && &bytes[..4] == MAGIC
        && crc32fast::hash(&bytes[..12]).to_le_bytes() == bytes[12..16]
        && bytes[4..8] == FORMAT.to_le_bytes()
        && bytes[8..12] == base_crc.to_le_bytes()
}

/// The records in `bytes` (the log from offset `at` on), each with the log offset where it
/// ends, up to the first torn or mismatching one. `Err`: a record with a valid checksum that
/// is out of bounds.
pub fn records(bytes: &[u8], at: u64, b: Bounds) -> Result<Vec<(Record, u64)>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(len) = bytes
        .get(pos..pos + 4)
        .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
    {
        let Some(body) = bytes.get(pos + 4..pos + 4 + len) else {
            break;
        };
        let Some(crc) = bytes.get(pos + 4 + len..pos + 8 + len) else {
            break;
        };
        if crc32fast::hash(body).to_le_bytes() != crc {
            break;
        }
        let end = pos + 8 + len;
        let rec =
            record(body, b).map_err(|e| format!("record at offset {}: {e}", at + pos as u64))?;
        out.push((rec, at + end as u64));
        pos = end;
    }
    Ok(out)
}

/// Decodes a whole log that should follow the base of crc32 `base_crc`: `Ok(None)` when it
/// is void (no valid header, or one of another base).
pub fn decode(bytes: &[u8], base_crc: u32, b: Bounds) -> Result<Option<Log>, String> {
    if !follows(bytes, base_crc) {
        return Ok(None);
    }
    let recs = records(&bytes[HEADER..], HEADER as u64, b)?;
    let valid = recs.last().map_or(HEADER as u64, |(_, end)| *end);
    Ok(Some(Log {
        records: recs.into_iter().map(|(r, _)| r).collect(),
        valid,
    }))
}

/// A decoded log: its records and the length of its valid prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// The records, in commit order.
    pub records: Vec<Record>,
    /// Bytes up to the end of the last valid record (where the next one goes).
    pub valid: u64,
}

fn record(body: &[u8], b: Bounds) -> Result<Record, String> {
    let mut c = Cursor::new(body);
    let rec = match c.u8()? {
        1 => {
            let stamp = c.u64()?;
            let first = c.u64()?;
            let (rows, lists) = decode_entries(&mut c, b)?;
            Record::Added {
                stamp,
                first,
                rows,
                lists,
            }
        }
        2 => {
            let (rows, lists) = decode_entries(&mut c, b)?;
            Record::Moved { rows, lists }
        }
        3 => Record::Stamp(c.u64()?),
        k => return Err(format!("unknown record kind {k}")),
    };
    c.finish()?;
    Ok(rec)
}

fn decode_entries(c: &mut Cursor<'_>, b: Bounds) -> Result<(Vec<u64>, Vec<u32>), String> {
    let n = c.u64()?;
    // Each entry takes 12 bytes of what is left: bounded before sizing.
    let each = 12u64;
    if n.checked_mul(each) != Some(c.left() as u64) {
        return Err(format!(
            "{n} entries do not fill the {} bytes left",
            c.left()
        ));
    }
    let n = n as usize;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        let r = c.u64()?;
        if r >= b.rows {
            return Err(format!("row {r} is past the array's {} rows", b.rows));
        }
        rows.push(r);
    }
    let mut lists = Vec::with_capacity(n);
    for _ in 0..n {
        let l = c.u32()?;
        if l >= b.nlist {
            return Err(format!("list {l} is past the index's {} lists", b.nlist));
        }
        lists.push(l);
    }
    Ok((rows, lists))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds { nlist: 3, rows: 10 };

    fn sample() -> Vec<u8> {
        let mut log = header(7);
        log.extend(encode(&Record::Added {
            stamp: 5,
            first: 4,
            rows: vec![4, 5],
            lists: vec![0, 2],
        }));
        log.extend(encode(&Record::Moved {
            rows: vec![1],
            lists: vec![1],
        }));
        log.extend(encode(&Record::Stamp(9)));
        log
    }

    #[test]
    fn round_trips_and_stops_at_a_torn_tail() {
        let bytes = sample();
        let log = decode(&bytes, 7, B).unwrap().unwrap();
        assert_eq!(log.records.len(), 3);
        assert_eq!(log.valid, bytes.len() as u64);
        assert_eq!(log.records[2], Record::Stamp(9));
        // Every cut keeps the whole records before it, and is never an error.
        let mut last = 0;
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut], 7, B).unwrap() {
                None => assert!(cut < HEADER),
                Some(l) => {
                    assert!(l.valid as usize <= cut && l.records.len() >= last);
                    last = l.records.len();
                }
            }
        }
        // Another base's log is void.
        assert!(decode(&bytes, 8, B).unwrap().is_none());
    }

    #[test]
    fn a_flipped_byte_drops_its_record_and_what_follows() {
        let bytes = sample();
        for at in HEADER..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            if let Ok(Some(l)) = decode(&b, 7, B) {
                assert!(l.records.len() < 3 || l.valid < b.len() as u64, "flip {at}");
            }
        }
    }

    #[test]
    fn checksummed_records_out_of_bounds_are_errors() {
        for (rows, lists) in [(vec![10u64], vec![0u32]), (vec![1], vec![3])] {
            let mut log = header(7);
            log.extend(encode(&Record::Moved { rows, lists }));
            assert!(decode(&log, 7, B).is_err());
        }
        // A count that the body cannot hold, with a valid checksum.
        let mut body = vec![2u8];
        body.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let mut log = header(7);
        frame(body, &mut log);
        assert!(decode(&log, 7, B).is_err());
    }

    #[test]
    fn large_appends_split_into_records() {
        let n = ROWS_PER_RECORD + 3;
        let rows: Vec<u64> = (100..100 + n as u64).collect();
        let rec = Record::Added {
            stamp: 1,
            first: 100,
            rows: rows.clone(),
            lists: vec![0; n],
        };
        let mut log = header(1);
        log.extend(encode(&rec));
        let b = Bounds {
            nlist: 1,
            rows: 200 + n as u64,
        };
        let got = decode(&log, 1, b).unwrap().unwrap();
        assert_eq!(got.records.len(), 2);
        match &got.records[1] {
            Record::Added { first, rows: r, .. } => {
                assert_eq!(*first, 100 + ROWS_PER_RECORD as u64);
                assert_eq!(r.len(), 3);
            }
            other => panic!("{other:?}"),
        }
    }
}
