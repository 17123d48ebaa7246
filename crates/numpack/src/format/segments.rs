//! `data_<stem>.npkseg`: the JSON manifest of an array kept in segments, the layout the
//! published 0.7 package uses for large arrays (FORMAT.md, "Segmented arrays"):
//!
//! ```text
//! {"version": 1, "segments": [{"file": "data_<stem>_segments/seg_000000.npkd",
//!                              "rows": R, "bytes": B}, ...]}
//! ```
//! The array's physical rows are the segments' rows in order. A decoded manifest names only
//! files of its own folder, each once, and its rows and bytes agree with each other and with
//! the metadata record; anything else is corruption.

use super::names;
use serde::{Deserialize, Serialize};

/// Largest manifest read (about 200,000 segments, 50 TB of 256 MiB segments).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Segment size the published package aims at when none is set.
pub const DEFAULT_TARGET_BYTES: u64 = 256 << 20;

/// One segment: a file of the folder and the rows it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Path relative to the store directory (`data_<stem>_segments/seg_NNNNNN.npkd`).
    pub file: String,
    /// Rows it holds.
    pub rows: u64,
    /// Bytes it holds (`rows` × row bytes).
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Raw {
    version: u64,
    segments: Vec<Segment>,
}

/// A checked manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// The segments, in row order.
    pub segments: Vec<Segment>,
}

impl Manifest {
    /// Decodes and checks a manifest of the array of stem `stem` whose record says `rows`
    /// rows of `row_bytes` bytes.
    pub fn decode(bytes: &[u8], stem: &str, rows: u64, row_bytes: u64) -> Result<Self, String> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(format!(
                "is {} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})",
                bytes.len()
            ));
        }
        // serde_json bounds nesting (128 levels) and skips nothing unbounded: the input is.
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| format!("is not a manifest: {e}"))?;
        if raw.version != 1 {
            return Err(format!("has version {} (only 1 is known)", raw.version));
        }
        let mut total = 0u64;
        let mut last = None;
        for s in &raw.segments {
            let n = names::segment_number(stem, &s.file).ok_or_else(|| {
                format!(
                    "names {:?}, not a segment file of {}/",
                    s.file,
                    names::segment_dir(stem)
                )
            })?;
            if last.is_some_and(|l| n <= l) {
                return Err(format!("names {:?} out of order or twice", s.file));
            }
            last = Some(n);
            if s.rows.checked_mul(row_bytes) != Some(s.bytes) {
                return Err(format!(
                    "says {:?} holds {} rows in {} bytes, but rows are {row_bytes} bytes",
                    s.file, s.rows, s.bytes
                ));
            }
            total = total
                .checked_add(s.rows)
                .ok_or_else(|| "counts more rows than there can be".to_owned())?;
        }
        // Rows of no bytes are counted by the record alone (their deletions fold into it,
        // and 0.7 never keeps such an array in segments).
        if total != rows && row_bytes > 0 {
            return Err(format!("holds {total} rows but the metadata says {rows}"));
        }
        Ok(Manifest {
            segments: raw.segments,
        })
    }

    /// The manifest as the published package writes it.
    pub fn encode(&self) -> Vec<u8> {
        let raw = Raw {
            version: 1,
            segments: self.segments.clone(),
        };
        // Python's `json.dumps` spacing, so the file reads the same whoever wrote it.
        let mut out = String::from("{\"version\": 1, \"segments\": [");
        for (i, s) in raw.segments.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let file = serde_json::to_string(&s.file).expect("a string encodes");
            out.push_str(&format!(
                "{{\"file\": {file}, \"rows\": {}, \"bytes\": {}}}",
                s.rows, s.bytes
            ));
        }
        out.push_str("]}");
        out.into_bytes()
    }

    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }
}

/// Bytes a segment is filled to before a new one starts: `NUMPACK_SEGMENT_TARGET_BYTES`, else
/// `NPK_SEGMENT_TARGET_BYTES` (the published names), else 256 MiB; unparsable or 0 values
/// are ignored.
pub fn target_bytes() -> u64 {
    ["NUMPACK_SEGMENT_TARGET_BYTES", "NPK_SEGMENT_TARGET_BYTES"]
        .iter()
        .find_map(|k| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&v| v > 0)
        })
        .unwrap_or(DEFAULT_TARGET_BYTES)
}

/// Rows per segment for rows of `row_bytes` bytes (at least one).
pub fn rows_per_segment(row_bytes: u64) -> u64 {
    if row_bytes == 0 {
        return u64::MAX;
    }
    (target_bytes() / row_bytes).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(i: usize, rows: u64, rb: u64) -> Segment {
        Segment {
            file: names::segment_file("e", i),
            rows,
            bytes: rows * rb,
        }
    }

    #[test]
    fn encodes_as_the_published_json() {
        let m = Manifest {
            segments: vec![seg(0, 2, 8), seg(1, 1, 8)],
        };
        let text = String::from_utf8(m.encode()).unwrap();
        assert_eq!(
            text,
            "{\"version\": 1, \"segments\": [{\"file\": \"data_e_segments/seg_000000.npkd\", \
             \"rows\": 2, \"bytes\": 16}, {\"file\": \"data_e_segments/seg_000001.npkd\", \
             \"rows\": 1, \"bytes\": 8}]}"
        );
        assert_eq!(Manifest::decode(text.as_bytes(), "e", 3, 8).unwrap(), m);
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let ok = |s: &str| Manifest::decode(s.as_bytes(), "e", 2, 4);
        let f = |file: &str, rows: u64, bytes: u64| {
            format!("{{\"version\": 1, \"segments\": [{{\"file\": {file:?}, \"rows\": {rows}, \"bytes\": {bytes}}}]}}")
        };
        assert!(ok(&f("data_e_segments/seg_000000.npkd", 2, 8)).is_ok());
        for bad in [
            f("data_e_segments/../../etc/passwd", 2, 8),
            f("/tmp/seg_000000.npkd", 2, 8),
            f("data_x_segments/seg_000000.npkd", 2, 8),
            f("data_e_segments/seg_000000.npkd", 2, 9),
            f("data_e_segments/seg_000000.npkd", 3, 12),
            f("data_e_segments/seg_000000.npkd", u64::MAX, 8),
            "{\"version\": 2, \"segments\": []}".to_owned(),
            "[".repeat(100_000),
            "{\"version\": 1}".to_owned(),
            "not json".to_owned(),
        ] {
            assert!(ok(&bad).is_err(), "{bad:.80}");
        }
        let twice = "{\"version\": 1, \"segments\": [{\"file\": \"data_e_segments/seg_000000.npkd\", \"rows\": 1, \"bytes\": 4}, {\"file\": \"data_e_segments/seg_000000.npkd\", \"rows\": 1, \"bytes\": 4}]}";
        assert!(ok(twice).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Manifest::decode(&bytes, "e", 3, 4);
        }

        #[test]
        fn encode_decode_round_trips(rows in proptest::collection::vec(0u64..1000, 0..20), rb in 0u64..64) {
            let m = Manifest { segments: rows.iter().enumerate().map(|(i, &r)| seg(i, r, rb)).collect() };
            prop_assert_eq!(Manifest::decode(&m.encode(), "e", m.rows(), rb).unwrap(), m);
        }
    }
}
