//! `deleted_<name>.npkb`: which physical rows are active (FORMAT.md, section `deleted_<name>.npkb`).
//!
//! Bit `i % 64` of word `i / 64` is 1 when physical row `i` is active. Rows past the
//! bitmap's own row count (appended after it was last written) are active.

/// A decoded deletion bitmap with a rank index for logical → physical mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    rows: u64,
    words: Vec<u64>,
    /// `prefix[w]` = active rows in words `0..w` (len = words + 1).
    prefix: Vec<u64>,
}

fn words_for(rows: u64) -> usize {
    usize::try_from(rows.div_ceil(64)).expect("row count fits in memory")
}

impl Bitmap {
    /// A bitmap of `rows` active rows.
    pub fn all_active(rows: u64) -> Self {
        let mut words = vec![u64::MAX; words_for(rows)];
        if !rows.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (rows % 64)) - 1;
            }
        }
        Self::from_words(rows, words)
    }

    fn from_words(rows: u64, words: Vec<u64>) -> Self {
        let mut prefix = Vec::with_capacity(words.len() + 1);
        let mut acc = 0u64;
        prefix.push(0);
        for w in &words {
            acc += u64::from(w.count_ones());
            prefix.push(acc);
        }
        Bitmap {
            rows,
            words,
            prefix,
        }
    }

    /// Physical rows covered by the bitmap.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Active rows among the covered ones.
    pub fn active(&self) -> u64 {
        *self.prefix.last().unwrap_or(&0)
    }

    /// Deleted rows.
    pub fn deleted(&self) -> u64 {
        self.rows - self.active()
    }

    /// Whether physical row `row` (< rows) is active.
    pub fn is_active(&self, row: u64) -> bool {
        let w = self.words[(row / 64) as usize];
        w >> (row % 64) & 1 == 1
    }

    /// Logical row of the active physical row `row`: the active rows before it (rows past
    /// the covered ones are active).
    pub fn rank(&self, row: u64) -> u64 {
        if row >= self.rows {
            return self.active() + (row - self.rows);
        }
        let w = (row / 64) as usize;
        let below = self.words[w] & ((1u64 << (row % 64)) - 1);
        self.prefix[w] + u64::from(below.count_ones())
    }

    /// Physical row of the `j`-th active row (`j < active()`), by binary search on the rank
    /// index then a scan of one word.
    pub fn select(&self, j: u64) -> u64 {
        // Largest w with prefix[w] <= j: the word holding the (j+1)-th active bit.
        let w = self.prefix.partition_point(|&p| p <= j) - 1;
        let mut word = self.words[w];
        for _ in 0..(j - self.prefix[w]) {
            word &= word - 1;
        }
        w as u64 * 64 + u64::from(word.trailing_zeros())
    }

    /// Calls `f(start, len)` for every maximal run of consecutive active physical rows, in
    /// order. Whole words are handled at once, so dense bitmaps cost one step per 64 rows.
    pub fn for_each_run(&self, mut f: impl FnMut(u64, u64)) {
        let mut run: Option<(u64, u64)> = None;
        let mut push = |row: u64, n: u64| match run {
            Some((s, l)) if s + l == row => run = Some((s, l + n)),
            Some((s, l)) => {
                f(s, l);
                run = Some((row, n));
            }
            None => run = Some((row, n)),
        };
        for (w, &word) in self.words.iter().enumerate() {
            let base = w as u64 * 64;
            let mut bits = word;
            while bits != 0 {
                let tz = bits.trailing_zeros();
                let ones = (bits >> tz).trailing_ones();
                push(base + u64::from(tz), u64::from(ones));
                bits &= if tz + ones >= 64 {
                    0
                } else {
                    u64::MAX << (tz + ones)
                };
            }
        }
        if let Some((s, l)) = run {
            f(s, l);
        }
    }

    /// The physical rows of all active rows, in order.
    pub fn active_rows(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(usize::try_from(self.active()).unwrap_or(0));
        for (w, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                out.push(w as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
        out
    }

    /// Marks physical rows deleted.
    pub fn delete(&mut self, physical_rows: impl IntoIterator<Item = u64>) {
        for r in physical_rows {
            self.words[(r / 64) as usize] &= !(1u64 << (r % 64));
        }
        *self = Self::from_words(self.rows, std::mem::take(&mut self.words));
    }

    /// Extends the bitmap to `rows` physical rows; the new rows are active.
    pub fn extend_to(&mut self, rows: u64) {
        if rows <= self.rows {
            return;
        }
        let mut words = std::mem::take(&mut self.words);
        words.resize(words_for(rows), 0);
        for r in self.rows..rows {
            words[(r / 64) as usize] |= 1u64 << (r % 64);
        }
        *self = Self::from_words(rows, words);
    }

    /// Whether `file` is this bitmap's file in the headered layout covering all its rows
    /// (what [`Bitmap::word_writes`] can edit); else rewrite it from [`Bitmap::encode`].
    pub fn is_file_of(&self, file: &[u8]) -> bool {
        file.len() as u64 == Self::max_file_len(self.rows)
            && file
                .get(..8)
                .map(|h| u64::from_le_bytes(h.try_into().expect("8 bytes")))
                == Some(self.rows)
    }

    /// The indices of the words holding physical rows `rows`, ascending, each once.
    pub fn words_holding(rows: &[u64]) -> Vec<usize> {
        let mut w: Vec<usize> = rows.iter().map(|r| (r / 64) as usize).collect();
        w.sort_unstable();
        w.dedup();
        w
    }

    /// The writes that bring this bitmap's file (see [`Bitmap::is_file_of`]) up to date after
    /// only the words `words` (ascending) changed: the header, and those words, neighbours
    /// closer than `WRITE_GAP` written as one range.
    pub fn word_writes(&self, words: &[usize]) -> Vec<(u64, Vec<u8>)> {
        let mut header = Vec::with_capacity(16);
        header.extend_from_slice(&self.rows.to_le_bytes());
        header.extend_from_slice(&self.deleted().to_le_bytes());
        let mut out = vec![(0u64, header)];
        let gap = WRITE_GAP / 8;
        let mut i = 0;
        while i < words.len() {
            let (start, mut end) = (words[i], words[i] + 1);
            i += 1;
            while i < words.len() && words[i] - end < gap {
                end = words[i] + 1;
                i += 1;
            }
            let bytes = self.words[start..end]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            out.push((16 + start as u64 * 8, bytes));
        }
        out
    }

    /// Encodes the file: header (rows, deleted) then the words.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.words.len() * 8);
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.deleted().to_le_bytes());
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Largest file a valid bitmap of an array of `physical_rows` rows can be (the headered
    /// layout covering every row); a file longer than this need not be read to be refused.
    pub fn max_file_len(physical_rows: u64) -> u64 {
        16 + physical_rows.div_ceil(64) * 8
    }

    /// Splits a bitmap file into the rows it covers and its words. Accepts the headered
    /// layout (covering at most `physical_rows`) and the legacy header-less one (words only).
    fn parse(bytes: &[u8], physical_rows: u64) -> Result<(u64, &[u8]), String> {
        let legacy = bytes.len() as u64 == physical_rows.div_ceil(64) * 8;
        if bytes.len() >= 16 {
            let rows = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
            let body = &bytes[16..];
            if rows <= physical_rows && body.len() as u64 == rows.div_ceil(64) * 8 {
                Ok((rows, body))
            } else if legacy {
                Ok((physical_rows, bytes))
            } else if rows > physical_rows {
                Err(format!(
                    "bitmap covers {rows} rows but the array has {physical_rows}"
                ))
            } else {
                Err(format!(
                    "bitmap is {} bytes; {rows} rows need {}",
                    bytes.len(),
                    16 + rows.div_ceil(64) * 8
                ))
            }
        } else if legacy {
            Ok((physical_rows, bytes))
        } else {
            Err(format!("bitmap is only {} bytes", bytes.len()))
        }
    }

    /// Words of `body` with the padding bits past `rows` cleared.
    fn words_of(body: &[u8], rows: u64) -> impl Iterator<Item = u64> + '_ {
        let last = body.len() / 8;
        body.chunks_exact(8).enumerate().map(move |(i, c)| {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            if i + 1 == last && !rows.is_multiple_of(64) {
                w & ((1u64 << (rows % 64)) - 1)
            } else {
                w
            }
        })
    }

    /// Decodes a bitmap file for an array of `physical_rows` rows (the caller has checked
    /// that the data file holds them, so the words allocated are bounded by the data). The
    /// deleted count is recomputed from the bits; padding bits are cleared.
    pub fn decode(bytes: &[u8], physical_rows: u64) -> Result<Self, String> {
        let (rows, body) = Self::parse(bytes, physical_rows)?;
        let words: Vec<u64> = Self::words_of(body, rows).collect();
        let mut b = Self::from_words(rows, words);
        b.extend_to(physical_rows);
        Ok(b)
    }

    /// The active rows a bitmap file leaves of `physical_rows`, without building the bitmap:
    /// memory and time are bounded by the file, whatever the row count (for arrays whose rows
    /// hold no bytes, which are kept without per-row state).
    pub fn count_active(bytes: &[u8], physical_rows: u64) -> Result<u64, String> {
        let (rows, body) = Self::parse(bytes, physical_rows)?;
        let ones: u64 = Self::words_of(body, rows)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        Ok(ones + (physical_rows - rows))
    }
}

/// Gaps between changed bytes shorter than this are written over rather than split into
/// another write (one system call costs more than rewriting a page of unchanged bytes).
const WRITE_GAP: usize = 4096;

/// The writes that extend a bitmap file in the headered layout, covering `rows` rows with
/// `last` its last word (when `rows` is not a multiple of 64), to `new_rows` rows, the new
/// ones active: the header, then the last word and every new one. `deleted` is the header's
/// count, kept as it is (readers recount the bits).
pub fn extension_writes(
    rows: u64,
    deleted: u64,
    last: Option<u64>,
    new_rows: u64,
) -> Vec<(u64, Vec<u8>)> {
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(&new_rows.to_le_bytes());
    header.extend_from_slice(&deleted.to_le_bytes());
    let first_word = rows / 64;
    let mut words = Vec::new();
    for w in first_word..new_rows.div_ceil(64) {
        let lo = (w * 64).max(rows);
        let hi = ((w + 1) * 64).min(new_rows);
        let mut word = match last {
            // Padding bits past the old rows may be anything: cleared before the new bits.
            Some(l) if w == first_word => l & ((1u64 << (rows % 64)) - 1),
            _ => 0,
        };
        for r in lo..hi {
            word |= 1u64 << (r % 64);
        }
        words.extend_from_slice(&word.to_le_bytes());
    }
    let mut out = vec![(0, header)];
    if !words.is_empty() {
        out.push((16 + first_word * 8, words));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_runs_match_a_scan() {
        let mut b = Bitmap::all_active(200);
        b.delete([0, 3, 63, 64, 65, 130, 199]);
        assert_eq!(b.deleted(), 7);
        let active = b.active_rows();
        assert_eq!(active.len() as u64, b.active());
        for (j, &p) in active.iter().enumerate() {
            assert_eq!(b.select(j as u64), p);
            assert_eq!(b.rank(p), j as u64);
        }
        assert_eq!(b.rank(205), b.active() + 5);
        let mut runs = vec![];
        b.for_each_run(|s, n| runs.extend(s..s + n));
        assert_eq!(runs, active);
    }

    #[test]
    fn extend_keeps_deleted_rows_deleted() {
        let mut b = Bitmap::all_active(10);
        b.delete([3]);
        b.extend_to(15);
        assert_eq!(b.rows(), 15);
        assert_eq!(b.deleted(), 1);
        assert!(!b.is_active(3));
        assert!(b.is_active(14));
    }

    fn apply(old: &[u8], writes: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut out = old.to_vec();
        for (off, b) in writes {
            let (at, end) = (*off as usize, *off as usize + b.len());
            if out.len() < end {
                out.resize(end, 0);
            }
            out[at..end].copy_from_slice(b);
        }
        out
    }

    #[test]
    fn word_writes_match_a_rewrite() {
        let mut b = Bitmap::all_active(100_000);
        b.delete([9]);
        let file = b.encode();
        assert!(b.is_file_of(&file));
        assert!(!b.is_file_of(&file[16..]));
        let rows = [5u64, 6, 64, 40_000, 99_999];
        let words = Bitmap::words_holding(&rows);
        assert_eq!(words, vec![0, 1, 625, 1562]);
        b.delete(rows);
        let w = b.word_writes(&words);
        assert_eq!(w.len(), 4, "header, words 0-1, 625, 1562");
        assert_eq!(apply(&file, &w), b.encode());
    }

    #[test]
    fn extension_matches_a_rewrite() {
        for (rows, new_rows) in [
            (10, 15),
            (10, 64),
            (64, 65),
            (63, 200),
            (128, 129),
            (1, 1000),
        ] {
            let mut b = Bitmap::all_active(rows);
            b.delete([0, rows - 1]);
            let mut file = b.encode();
            // Padding bits set, as another writer may leave them.
            if rows % 64 != 0 {
                let at = file.len() - 8;
                let w = u64::from_le_bytes(file[at..].try_into().unwrap())
                    | !((1u64 << (rows % 64)) - 1);
                file[at..].copy_from_slice(&w.to_le_bytes());
            }
            let last = (rows % 64 != 0)
                .then(|| u64::from_le_bytes(file[file.len() - 8..].try_into().unwrap()));
            let grown = apply(&file, &extension_writes(rows, b.deleted(), last, new_rows));
            b.extend_to(new_rows);
            assert_eq!(grown, b.encode(), "{rows} -> {new_rows}");
        }
    }

    #[test]
    fn encode_decode_and_legacy_layout() {
        let mut b = Bitmap::all_active(70);
        b.delete([1, 69]);
        let enc = b.encode();
        assert_eq!(enc.len(), 16 + 16);
        assert_eq!(Bitmap::decode(&enc, 70).unwrap(), b);
        assert_eq!(Bitmap::decode(&enc[16..], 70).unwrap(), b);
        // A short bitmap (written before an append) covers the first rows; the rest are active.
        let short = Bitmap::decode(&enc, 100).unwrap();
        assert_eq!(short.rows(), 100);
        assert_eq!(short.deleted(), 2);
        assert!(Bitmap::decode(&enc, 60).is_err());
        assert!(Bitmap::decode(&enc[..20], 70).is_err());
        assert_eq!(Bitmap::count_active(&enc, 70).unwrap(), 68);
        assert_eq!(Bitmap::count_active(&enc, 1 << 62).unwrap(), (1 << 62) - 2);
        assert!(enc.len() as u64 <= Bitmap::max_file_len(70));
    }
}
