//! An IVF index with the position of every listed row, so the records of the delta log
//! (rows added, rows moved to another list) apply in constant time per row, and so a row is
//! never listed twice (a decoded file that lists one twice is refused).

use super::ivf::Payload;
use super::Ivf;
use crate::format::index_log::Record;

/// An index and where each of its rows is.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The index.
    pub ivf: Ivf,
    /// Per physical row: `list << 32 | position`, plus one; 0 when the row is not listed.
    at: Vec<u64>,
}

fn pack(list: usize, pos: usize) -> u64 {
    ((list as u64) << 32 | pos as u64) + 1
}

impl Listed {
    /// `ivf` with its positions; every row must be below `rows` and listed once.
    pub fn new(ivf: Ivf, rows: u64) -> Result<Self, String> {
        let listed: usize = ivf.lists.iter().map(Vec::len).sum();
        if listed as u64 > rows {
            return Err(format!("{listed} rows listed, the array has {rows}"));
        }
        let mut at = vec![
            0u64;
            ivf.lists
                .iter()
                .flatten()
                .max()
                .map_or(0, |&m| m as usize + 1)
        ];
        for (j, list) in ivf.lists.iter().enumerate() {
            for (p, &r) in list.iter().enumerate() {
                if r >= rows {
                    return Err(format!("row {r} is past the array's {rows} rows"));
                }
                let slot = &mut at[r as usize];
                if *slot != 0 {
                    return Err(format!("row {r} is listed twice"));
                }
                *slot = pack(j, p);
            }
        }
        Ok(Listed { ivf, at })
    }

    /// Rows listed.
    pub fn len(&self) -> usize {
        self.ivf.lists.iter().map(Vec::len).sum()
    }

    /// Whether no row is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the highest listed row (0 when none is).
    pub fn end(&self) -> u64 {
        self.at.len() as u64
    }

    /// Takes `row` out of its list (if listed).
    pub fn unlist(&mut self, row: u64) {
        let Some(&slot) = self.at.get(row as usize) else {
            return;
        };
        if slot == 0 {
            return;
        }
        let (j, p) = (
            ((slot - 1) >> 32) as usize,
            ((slot - 1) & 0xffff_ffff) as usize,
        );
        // The bytes of one entry's payload: its copy (floats) or its code (bytes).
        let (w, payload): (usize, &mut dyn Entries) = match self.ivf.pq.as_ref() {
            None => (self.ivf.dim, &mut self.ivf.vecs[j]),
            Some(pq) => (pq.m, &mut self.ivf.codes[j]),
        };
        let list = &mut self.ivf.lists[j];
        let last = list.len() - 1;
        list.swap_remove(p);
        // The last entry moves into the hole: its payload and its position follow.
        payload.swap_out(p, last, w);
        if p != last {
            self.at[list[p] as usize] = pack(j, p);
        }
        self.at[row as usize] = 0;
    }

    /// Takes every row at or past `first` out of its list.
    pub fn unlist_from(&mut self, first: u64) {
        for r in first..self.end() {
            self.unlist(r);
        }
        let keep = (first as usize).min(self.at.len());
        self.at.truncate(keep);
        while self.at.last() == Some(&0) {
            self.at.pop();
        }
    }

    /// Lists `rows[i]` in `lists[i]` with entry `i` of `payload` (moving it if it is
    /// listed).
    pub fn place(&mut self, rows: &[u64], lists: &[u32], payload: &Payload) {
        for (i, (&r, &j)) in rows.iter().zip(lists).enumerate() {
            self.unlist(r);
            let j = j as usize;
            let p = self.ivf.lists[j].len();
            self.ivf.push(j, r, payload, i);
            if self.at.len() <= r as usize {
                self.at.resize(r as usize + 1, 0);
            }
            self.at[r as usize] = pack(j, p);
        }
    }

    /// Applies one record of the delta log (bounds already checked by its decoder). The
    /// copies are the rows' vectors in `data`, the array's physical rows (row-major; rows
    /// past it copy as zeros).
    pub fn apply(&mut self, rec: &Record, data: &[f32]) {
        let (rows, lists) = match rec {
            Record::Added {
                first, rows, lists, ..
            } => {
                if self.end() > *first {
                    // Left by an append whose commit never happened.
                    self.unlist_from(*first);
                }
                (rows, lists)
            }
            Record::Moved { rows, lists } => (rows, lists),
            Record::Stamp(_) => return,
        };
        let dim = self.ivf.dim;
        let mut v = Vec::with_capacity(rows.len() * dim);
        for &r in rows {
            match data.get(r as usize * dim..(r as usize + 1) * dim) {
                Some(row) => v.extend_from_slice(row),
                None => v.resize(v.len() + dim, 0.0),
            }
        }
        let payload = self.ivf.payload(&v, lists);
        self.place(rows, lists, &payload);
    }

    /// The index with rows renumbered by `map` (old physical row → new one, `None`:
    /// dropped), as compaction renumbers the array's rows.
    pub fn remapped(&self, map: impl Fn(u64) -> Option<u64>) -> Ivf {
        let dim = self.ivf.dim;
        let m = self.ivf.pq.as_ref().map_or(0, |p| p.m);
        let nlist = self.ivf.lists.len();
        let mut ivf = Ivf {
            metric: self.ivf.metric,
            dim,
            centroids: self.ivf.centroids.clone(),
            lists: Vec::with_capacity(nlist),
            vecs: Vec::with_capacity(nlist),
            pq: self.ivf.pq.clone(),
            codes: Vec::with_capacity(nlist),
        };
        for (j, list) in self.ivf.lists.iter().enumerate() {
            let (mut l, mut v, mut c) = (Vec::new(), Vec::new(), Vec::new());
            for (p, &r) in list.iter().enumerate() {
                if let Some(n) = map(r) {
                    l.push(n);
                    if m == 0 {
                        v.extend_from_slice(&self.ivf.vecs[j][p * dim..(p + 1) * dim]);
                    } else {
                        c.extend_from_slice(&self.ivf.codes[j][p * m..(p + 1) * m]);
                    }
                }
            }
            ivf.lists.push(l);
            ivf.vecs.push(v);
            ivf.codes.push(c);
        }
        ivf
    }
}

/// A list's payload storage, `w` elements per entry.
trait Entries {
    /// Moves entry `last` over entry `p` and drops the last entry.
    fn swap_out(&mut self, p: usize, last: usize, w: usize);
}

impl<T: Copy> Entries for Vec<T> {
    fn swap_out(&mut self, p: usize, last: usize, w: usize) {
        if p != last {
            self.copy_within(last * w..(last + 1) * w, p * w);
        }
        self.truncate(last * w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::metric::Metric;
    use proptest::prelude::*;

    fn empty(nlist: usize, dim: usize) -> Listed {
        let ivf = Ivf {
            metric: Metric::L2,
            dim,
            centroids: vec![0.0; nlist * dim],
            lists: vec![Vec::new(); nlist],
            vecs: vec![Vec::new(); nlist],
            pq: None,
            codes: vec![Vec::new(); nlist],
        };
        Listed::new(ivf, 0).unwrap()
    }

    /// Every listed row once, with its own copy (each copy holds its row number).
    fn check(l: &Listed, want: &std::collections::BTreeMap<u64, u32>) {
        let mut seen = std::collections::BTreeMap::new();
        for (j, list) in l.ivf.lists.iter().enumerate() {
            assert_eq!(l.ivf.vecs[j].len(), list.len());
            for (p, &r) in list.iter().enumerate() {
                assert_eq!(l.ivf.vecs[j][p], r as f32);
                assert!(seen.insert(r, j as u32).is_none(), "row {r} twice");
            }
        }
        assert_eq!(&seen, want);
    }

    proptest! {
        #[test]
        fn places_moves_and_cuts_keep_each_row_once(
            ops in proptest::collection::vec((0u8..3, 0u64..40, 0u32..4), 1..80)
        ) {
            let mut l = empty(4, 1);
            let mut want = std::collections::BTreeMap::new();
            for (op, r, j) in ops {
                match op {
                    0 | 1 => {
                        l.place(&[r], &[j], &Payload::Flat(vec![r as f32]));
                        want.insert(r, j);
                    }
                    _ => {
                        l.unlist_from(r);
                        want.retain(|&k, _| k < r);
                    }
                }
                check(&l, &want);
                let rebuilt = Listed::new(l.ivf.clone(), 40).unwrap();
                prop_assert_eq!(rebuilt.end(), l.end());
            }
        }
    }

    #[test]
    fn a_row_listed_twice_is_refused() {
        let mut ivf = empty(2, 1).ivf;
        ivf.lists = vec![vec![3], vec![3]];
        ivf.vecs = vec![vec![0.0], vec![0.0]];
        assert!(Listed::new(ivf.clone(), 10).unwrap_err().contains("twice"));
        ivf.lists = vec![vec![3], vec![]];
        ivf.vecs = vec![vec![0.0], vec![]];
        assert!(Listed::new(ivf, 3).is_err());
    }
}
