//! The base file of a vector index (`index_<array>.npki`, numpack's own; the published
//! package ignores it). All integers little-endian; the crc32 covers every byte before it.
//!
//! ```text
//! magic "NPKI" | u32 format 1 | u8 metric (0 dot, 1 cosine, 2 l2, 3 l2sq)
//! | u8 kind (0 IVF-Flat, 2 IVF-PQ) | u16 m (PQ sub-spaces; 0 for IVF-Flat)
//! | u32 dim | u32 nlist | u64 stamp (the array's `last_modified` it describes)
//! | u64 rows (the array's physical rows then)
//! nlist x dim f32 centroids
//! IVF-PQ only: m x 256 x (dim / m) f32 codewords, sub-space by sub-space
//! nlist x u64 list lengths
//! sum(lengths) x u64 physical rows, list by list
//! IVF-Flat: sum(lengths) x dim f32 vector copies, in the same order
//! IVF-PQ:   sum(lengths) x m u8 codes of the residuals, in the same order
//! u32 crc32
//! ```
//!
//! Decoding checks the magic, format, codes, bounds (dimensions 1..=65536, lists
//! 1..=2^20, rows below `rows`) and the checksum, and sizes every allocation by the bytes
//! actually there before making it.

use super::cursor::Cursor;
use crate::vector::index::pq::{Pq, KSUB};
use crate::vector::index::Ivf;
use crate::vector::metric::Metric;

const MAGIC: &[u8; 4] = b"NPKI";
const FORMAT: u32 = 1;
/// Largest vector width read.
pub const MAX_DIM: u32 = 1 << 16;
/// Most lists read.
pub const MAX_LISTS: u32 = 1 << 20;
const HEAD: usize = 4 + 4 + 1 + 1 + 2 + 4 + 4 + 8 + 8;

/// An index's base file, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexFile {
    /// The array's `last_modified` when the file was written (the commit it belongs to).
    pub stamp: u64,
    /// The array's physical rows then.
    pub rows: u64,
    /// The index.
    pub ivf: Ivf,
}

fn metric_code(m: Metric) -> Option<u8> {
    Some(match m {
        Metric::Dot => 0,
        Metric::Cosine => 1,
        Metric::L2 => 2,
        Metric::L2Sq => 3,
        _ => return None,
    })
}

fn metric_of(code: u8) -> Option<Metric> {
    Some(match code {
        0 => Metric::Dot,
        1 => Metric::Cosine,
        2 => Metric::L2,
        3 => Metric::L2Sq,
        _ => return None,
    })
}

/// Little-endian bytes of `v` onto `out` (one copy on little-endian machines).
fn put<T: bytemuck::Pod + ToLe>(out: &mut Vec<u8>, v: &[T]) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(v));
    } else {
        for x in v {
            x.put_le(out);
        }
    }
}

/// Values from their little-endian bytes (one copy on little-endian machines).
fn take<T: bytemuck::Pod + ToLe>(b: &[u8]) -> Vec<T> {
    if cfg!(target_endian = "little") {
        bytemuck::pod_collect_to_vec(b)
    } else {
        b.chunks_exact(std::mem::size_of::<T>())
            .map(T::from_le)
            .collect()
    }
}

/// The element types of the file.
trait ToLe: Sized {
    fn put_le(&self, out: &mut Vec<u8>);
    fn from_le(b: &[u8]) -> Self;
}

impl ToLe for f32 {
    fn put_le(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes(b.try_into().expect("4 bytes"))
    }
}

impl ToLe for u64 {
    fn put_le(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(b: &[u8]) -> Self {
        u64::from_le_bytes(b.try_into().expect("8 bytes"))
    }
}

impl IndexFile {
    /// The metric a file's first bytes name (not checked further: for choosing a default).
    pub fn peek_metric(head: &[u8]) -> Option<Metric> {
        (head.len() >= HEAD && &head[..4] == MAGIC)
            .then(|| metric_of(head[8]))
            .flatten()
    }

    /// The file's bytes. `None` for an index of a metric the format has no code for.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_with(usize::MAX, |b| {
            out.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .ok()??;
        Some(out)
    }

    /// The file's bytes in pieces of about `chunk` bytes, each handed to `put` in order (so
    /// a large index is written without a second copy of it in memory); the crc32 last.
    /// `Ok(None)` for an index of a metric the format has no code for.
    pub fn encode_with<E>(
        &self,
        chunk: usize,
        mut put_out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Option<()>, E> {
        let ivf = &self.ivf;
        let Some(metric) = metric_code(ivf.metric) else {
            return Ok(None);
        };
        let m = ivf.pq.as_ref().map_or(0, |p| p.m);
        let Ok(m16) = u16::try_from(m) else {
            return Ok(None);
        };
        let mut crc = crc32fast::Hasher::new();
        let mut buf = Vec::with_capacity(chunk.min(8 << 20));
        let mut flush = |buf: &mut Vec<u8>, force: bool| -> Result<(), E> {
            if !buf.is_empty() && (force || buf.len() >= chunk) {
                crc.update(buf);
                put_out(buf)?;
                buf.clear();
            }
            Ok(())
        };
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&FORMAT.to_le_bytes());
        buf.push(metric);
        buf.push(if ivf.pq.is_some() { 2 } else { 0 });
        buf.extend_from_slice(&m16.to_le_bytes());
        buf.extend_from_slice(&(ivf.dim as u32).to_le_bytes());
        buf.extend_from_slice(&(ivf.nlist() as u32).to_le_bytes());
        buf.extend_from_slice(&self.stamp.to_le_bytes());
        buf.extend_from_slice(&self.rows.to_le_bytes());
        put(&mut buf, &ivf.centroids);
        if let Some(pq) = &ivf.pq {
            put(&mut buf, &pq.codebooks);
        }
        let lens: Vec<u64> = ivf.lists.iter().map(|l| l.len() as u64).collect();
        put(&mut buf, &lens);
        flush(&mut buf, false)?;
        for l in &ivf.lists {
            put(&mut buf, l);
            flush(&mut buf, false)?;
        }
        for j in 0..ivf.lists.len() {
            if m > 0 {
                buf.extend_from_slice(ivf.codes.get(j).map_or(&[][..], Vec::as_slice));
            } else {
                put(&mut buf, ivf.vecs.get(j).map_or(&[][..], Vec::as_slice));
            }
            flush(&mut buf, false)?;
        }
        flush(&mut buf, true)?;
        put_out(&crc.finalize().to_le_bytes())?;
        Ok(Some(()))
    }

    /// Decodes a whole file (see the module documentation for what is checked).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEAD + 4 {
            return Err(format!(
                "{} bytes, shorter than an index header",
                bytes.len()
            ));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        let mut c = Cursor::new(body);
        if c.take(4)? != &MAGIC[..] {
            return Err("not a numpack index file (bad magic)".into());
        }
        let format = c.u32()?;
        if format != FORMAT {
            return Err(format!(
                "index format {format}; this build reads format {FORMAT}"
            ));
        }
        if crc32fast::hash(body) != crc {
            return Err("checksum mismatch".into());
        }
        let metric = metric_of(c.u8()?).ok_or("unknown metric code")?;
        let kind = c.u8()?;
        let m = usize::from(u16::from_le_bytes(c.take(2)?.try_into().expect("2 bytes")));
        match (kind, m) {
            (0, 0) => {}
            (2, m) if m > 0 && matches!(metric, Metric::Dot | Metric::Cosine) => {}
            (0 | 2, _) => return Err(format!("kind {kind} with {m} sub-spaces")),
            _ => return Err(format!("unknown index kind {kind}")),
        }
        let dim = c.u32()?;
        let nlist = c.u32()?;
        if !(1..=MAX_DIM).contains(&dim) || !(1..=MAX_LISTS).contains(&nlist) {
            return Err(format!(
                "{dim} dimensions and {nlist} lists are out of bounds"
            ));
        }
        let (dim, nlist) = (dim as usize, nlist as usize);
        if m > 0 && !dim.is_multiple_of(m) {
            return Err(format!("{m} sub-spaces do not divide {dim} dimensions"));
        }
        let stamp = c.u64()?;
        let rows = c.u64()?;
        let floats = |c: &mut Cursor<'_>, n: usize| -> Result<Vec<f32>, String> {
            let len = n.checked_mul(4).ok_or("size overflow")?;
            Ok(take::<f32>(c.take(len)?))
        };
        let centroids = floats(&mut c, nlist * dim)?;
        let pq = if m > 0 {
            let codebooks = floats(&mut c, KSUB * dim)?;
            Some(Pq {
                m,
                dsub: dim / m,
                codebooks,
            })
        } else {
            None
        };
        let mut lens = Vec::with_capacity(nlist);
        let mut total = 0u64;
        for _ in 0..nlist {
            let n = c.u64()?;
            total = total.checked_add(n).ok_or("size overflow")?;
            lens.push(n);
        }
        // Each listed row takes 8 bytes and its copy or code of what is left: bounded
        // before sizing.
        let each = 8 + if m > 0 { m as u64 } else { 4 * dim as u64 };
        if total.checked_mul(each) != Some(c.left() as u64) {
            return Err(format!(
                "{total} listed rows need {} bytes, the file has {}",
                total.saturating_mul(each),
                c.left()
            ));
        }
        let mut lists = Vec::with_capacity(nlist);
        for &n in &lens {
            let l: Vec<u64> = take(c.take(n as usize * 8)?);
            if let Some(r) = l.iter().find(|&&r| r >= rows) {
                return Err(format!("row {r} is past the {rows} rows indexed"));
            }
            lists.push(l);
        }
        let (mut vecs, mut codes) = (Vec::with_capacity(nlist), Vec::with_capacity(nlist));
        for &n in &lens {
            if m > 0 {
                vecs.push(Vec::new());
                codes.push(c.take(n as usize * m)?.to_vec());
            } else {
                vecs.push(floats(&mut c, n as usize * dim)?);
                codes.push(Vec::new());
            }
        }
        c.finish()?;
        Ok(IndexFile {
            stamp,
            rows,
            ivf: Ivf {
                metric,
                dim,
                centroids,
                lists,
                vecs,
                pq,
                codes,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::index::{BuildOptions, SliceRows};

    /// A small index of `dim`-wide rows: IVF-Flat (l2), or IVF-PQ with `pq` sub-spaces
    /// (dot).
    fn built(dim: usize, nlist: usize, pq: Option<usize>, stamp: u64) -> IndexFile {
        let n = 300;
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 37) % 101) as f32 / 10.0)
            .collect();
        let src = SliceRows {
            data: &data,
            dim,
            deleted: None,
        };
        let opts = BuildOptions {
            nlist: Some(nlist),
            pq,
            ..BuildOptions::default()
        };
        let metric = if pq.is_some() {
            Metric::Dot
        } else {
            Metric::L2
        };
        IndexFile {
            stamp,
            rows: n as u64,
            ivf: Ivf::build(metric, &src, n as u64, dim, &opts).unwrap(),
        }
    }

    fn sample() -> IndexFile {
        built(5, 7, None, 42)
    }

    fn sample_pq() -> IndexFile {
        built(4, 5, Some(2), 7)
    }

    #[test]
    fn round_trips() {
        let f = sample();
        let bytes = f.encode().unwrap();
        assert_eq!(IndexFile::decode(&bytes).unwrap(), f);
        let pq = sample_pq();
        let bytes = pq.encode().unwrap();
        assert_eq!(bytes[9], 2);
        assert_eq!(IndexFile::decode(&bytes).unwrap(), pq);
        for cut in 0..bytes.len() {
            assert!(IndexFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(IndexFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x41;
            assert!(IndexFile::decode(&b).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn huge_counts_with_a_valid_checksum_allocate_nothing() {
        // A hostile file that passes the checksum: 2^20 lists of 2^40 rows each.
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT.to_le_bytes());
        b.extend_from_slice(&[2, 0, 0, 0]);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&MAX_LISTS.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, MAX_LISTS as usize * 4));
        for _ in 0..MAX_LISTS {
            b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let e = IndexFile::decode(&b).unwrap_err();
        assert!(e.contains("overflow") || e.contains("need"), "{e}");
    }
}
