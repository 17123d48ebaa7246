//! Which logical rows a call means: indexes (negative from the end), a slice or a mask,
//! resolved against the array as it is when the call runs. Mutations resolve under the
//! store lock, so `drop(name, -1)` from two processes deletes two different last rows.

use crate::error::{NpkError, NpkResult};
use crate::format::bitmap::Bitmap;

/// A selection of logical rows, as the caller gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSelection<'a> {
    /// Row numbers, negative from the end, any order, duplicates allowed.
    Indices(&'a [i64]),
    /// Python's `slice(start, stop, step)` (`None` bounds as in Python; `step != 0`).
    Slice {
        /// First row (`None`: the start for the step's direction).
        start: Option<i64>,
        /// Row after the last (`None`: the end for the step's direction).
        stop: Option<i64>,
        /// Stride, negative to go backwards.
        step: i64,
    },
    /// One flag per logical row; the rows whose flag is set, in order.
    Mask(&'a [bool]),
}

/// A slice resolved against `n` rows: `count` rows from `start` by `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: i128,
    step: i128,
    count: u64,
}

/// CPython's `slice.indices(n)` followed by the length of the resulting range.
fn slice_range(start: Option<i64>, stop: Option<i64>, step: i64, n: u64) -> NpkResult<Range> {
    if step == 0 {
        return Err(NpkError::InvalidOperation(
            "slice step cannot be zero".into(),
        ));
    }
    let (n, step) = (i128::from(n), i128::from(step));
    let adjust = |v: Option<i64>, default_neg: i128, default_pos: i128| -> i128 {
        let v = v.map_or(if step < 0 { default_neg } else { default_pos }, i128::from);
        if v < 0 {
            let v = v + n;
            if v < 0 {
                if step < 0 {
                    -1
                } else {
                    0
                }
            } else {
                v
            }
        } else if v >= n {
            if step < 0 {
                n - 1
            } else {
                n
            }
        } else {
            v
        }
    };
    let start = adjust(start, n - 1, 0);
    let stop = adjust(stop, -n - 1, n);
    let count = if step > 0 && start < stop {
        (stop - start - 1) / step + 1
    } else if step < 0 && stop < start {
        (start - stop - 1) / (-step) + 1
    } else {
        0
    };
    Ok(Range {
        start,
        step,
        count: u64::try_from(count).expect("a range of at most n rows"),
    })
}

fn check_index(i: i64, n: u64) -> NpkResult<u64> {
    let j = if i < 0 {
        i128::from(i) + i128::from(n)
    } else {
        i128::from(i)
    };
    if j < 0 || j >= i128::from(n) {
        return Err(NpkError::IndexOutOfBounds(i, n));
    }
    Ok(j as u64)
}

fn check_mask(array: &str, mask: &[bool], n: u64) -> NpkResult<()> {
    if mask.len() as u64 != n {
        return Err(NpkError::InvalidShape(format!(
            "Boolean mask length {} doesn't match the length {n} of array '{array}'",
            mask.len()
        )));
    }
    Ok(())
}

impl RowSelection<'_> {
    /// The logical rows selected from an array of `n` logical rows, in order.
    pub fn resolve(&self, array: &str, n: u64) -> NpkResult<Vec<u64>> {
        match *self {
            RowSelection::Indices(idx) => idx.iter().map(|&i| check_index(i, n)).collect(),
            RowSelection::Slice { start, stop, step } => {
                let r = slice_range(start, stop, step, n)?;
                Ok((0..r.count)
                    .map(|k| (r.start + i128::from(k) * r.step) as u64)
                    .collect())
            }
            RowSelection::Mask(mask) => {
                check_mask(array, mask, n)?;
                Ok(mask
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &m)| m.then_some(i as u64))
                    .collect())
            }
        }
    }

    /// How many rows the selection picks (duplicates counted) and how many distinct rows,
    /// checked like [`RowSelection::resolve`] but without listing them: for arrays whose rows
    /// hold no bytes, whose row count the data cannot bound.
    pub fn count(&self, array: &str, n: u64) -> NpkResult<(u64, u64)> {
        match *self {
            RowSelection::Indices(idx) => {
                let mut seen = std::collections::HashSet::with_capacity(idx.len());
                for &i in idx {
                    seen.insert(check_index(i, n)?);
                }
                Ok((idx.len() as u64, seen.len() as u64))
            }
            RowSelection::Slice { start, stop, step } => {
                let c = slice_range(start, stop, step, n)?.count;
                Ok((c, c))
            }
            RowSelection::Mask(mask) => {
                check_mask(array, mask, n)?;
                let c = mask.iter().filter(|&&m| m).count() as u64;
                Ok((c, c))
            }
        }
    }

    /// The selection as one contiguous ascending range `start..stop`, when it is one (a
    /// slice of step 1), so readers can copy it whole.
    pub fn as_range(&self, n: u64) -> Option<(u64, u64)> {
        match *self {
            RowSelection::Slice {
                start,
                stop,
                step: 1,
            } => {
                let r = slice_range(start, stop, 1, n).ok()?;
                Some((r.start as u64, r.start as u64 + r.count))
            }
            _ => None,
        }
    }
}

/// Maps logical rows to physical rows through the bitmap (identity without one).
pub fn physical(logical: Vec<u64>, bitmap: Option<&Bitmap>) -> Vec<u64> {
    match bitmap {
        None => logical,
        Some(b) => logical.into_iter().map(|j| b.select(j)).collect(),
    }
}

/// Maps logical indices (negative from the end) to physical rows; out of range is an error.
pub fn resolve_rows(indices: &[i64], logical: u64, bitmap: Option<&Bitmap>) -> NpkResult<Vec<u64>> {
    RowSelection::Indices(indices)
        .resolve("", logical)
        .map(|rows| physical(rows, bitmap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Python's semantics, written out directly.
    fn python_slice(start: Option<i64>, stop: Option<i64>, step: i64, n: u64) -> Vec<u64> {
        let n = n as i64;
        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let norm = |v: i64| if v < 0 { v + n } else { v };
        let s = start.map_or(if step > 0 { 0 } else { n - 1 }, |v| clamp(norm(v), lo, hi));
        let e = stop.map_or(if step > 0 { n } else { -1 }, |v| clamp(norm(v), lo, hi));
        let mut out = vec![];
        let mut i = s;
        while (step > 0 && i < e) || (step < 0 && i > e) {
            out.push(i as u64);
            i += step;
        }
        out
    }

    proptest! {
        #[test]
        fn slices_match_python(
            start in proptest::option::of(-30i64..30),
            stop in proptest::option::of(-30i64..30),
            step in prop_oneof![-7i64..0, 1i64..8],
            n in 0u64..25,
        ) {
            let sel = RowSelection::Slice { start, stop, step };
            let rows = sel.resolve("a", n).unwrap();
            prop_assert_eq!(&rows, &python_slice(start, stop, step, n));
            let c = rows.len() as u64;
            prop_assert_eq!(sel.count("a", n).unwrap(), (c, c));
        }

        #[test]
        fn indices_and_masks(idx in proptest::collection::vec(-12i64..12, 0..10), n in 0u64..10) {
            let sel = RowSelection::Indices(&idx);
            let ok = idx.iter().all(|&i| i >= -(n as i64) && i < n as i64);
            prop_assert_eq!(sel.resolve("a", n).is_ok(), ok);
            prop_assert_eq!(sel.count("a", n).is_ok(), ok);
            let mask: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
            let m = RowSelection::Mask(&mask).resolve("a", n).unwrap();
            prop_assert!(m.iter().all(|r| r % 3 == 0));
            prop_assert!(RowSelection::Mask(&mask).resolve("a", n + 1).is_err());
        }
    }

    #[test]
    fn extreme_bounds_do_not_overflow() {
        let n = u64::MAX >> 1;
        let sel = RowSelection::Slice {
            start: Some(i64::MIN),
            stop: Some(i64::MAX),
            step: i64::MAX,
        };
        assert_eq!(sel.count("a", n).unwrap(), (1, 1));
        let sel = RowSelection::Slice {
            start: None,
            stop: None,
            step: -1,
        };
        assert_eq!(sel.count("a", n).unwrap().0, n);
        assert!(RowSelection::Slice {
            start: None,
            stop: None,
            step: 0
        }
        .count("a", 3)
        .is_err());
        assert!(RowSelection::Indices(&[i64::MIN]).resolve("a", n).is_err());
    }
}
