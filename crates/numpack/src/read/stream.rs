//! Streaming an array in batches of logical rows.

use crate::dtype::NpkElement;
use crate::error::{NpkError, NpkResult};
use crate::read::snapshot::ArraySnapshot;
use ndarray::ArrayD;
use std::marker::PhantomData;
use std::sync::Arc;

/// Iterator of batches of at most `batch_rows` logical rows, read from a snapshot of the
/// array taken when the stream was created.
#[derive(Debug)]
pub struct StreamIterator<T> {
    snap: Arc<ArraySnapshot>,
    next_row: u64,
    batch_rows: u64,
    _t: PhantomData<T>,
}

impl<T: NpkElement> StreamIterator<T> {
    pub(crate) fn new(snap: Arc<ArraySnapshot>, batch_rows: usize) -> NpkResult<Self> {
        if batch_rows == 0 {
            return Err(NpkError::InvalidOperation(
                "buffer_size must be greater than 0".into(),
            ));
        }
        if snap.is_scalar() {
            return Err(NpkError::InvalidShape(format!(
                "array '{}' is 0-d and cannot be streamed by rows",
                snap.meta.name
            )));
        }
        Ok(StreamIterator {
            snap,
            next_row: 0,
            batch_rows: batch_rows as u64,
            _t: PhantomData,
        })
    }
}

impl<T: NpkElement> Iterator for StreamIterator<T> {
    type Item = NpkResult<ArrayD<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.snap.logical_rows();
        if self.next_row >= rows {
            return None;
        }
        let stop = rows.min(self.next_row + self.batch_rows);
        let mut bytes = vec![0u8; (stop - self.next_row) as usize * self.snap.row_bytes()];
        let start = self.next_row;
        self.next_row = stop;
        let mut shape = self.snap.logical_shape();
        shape[0] = stop - start;
        Some(
            self.snap
                .range_into(start, stop, &mut bytes)
                .and_then(|()| crate::parallel_io::to_array(&shape, &bytes)),
        )
    }
}
