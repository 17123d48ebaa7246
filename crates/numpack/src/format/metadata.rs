//! `metadata.npkm`: the binary directory of every array (FORMAT.md, "metadata.npkm").

use super::cursor::Cursor;
use super::names;
use crate::dtype::DataType;
use std::collections::{BTreeMap, HashMap};

/// Magic number at offset 0 (the bytes `N P K B`).
pub const MAGIC: u32 = 0x424B_504E;
/// The only metadata version.
pub const VERSION: u32 = 1;
/// Most dimensions an array may have (what every NumPy and rust-numpy build can represent);
/// more is corruption in a file and a `ValueError` for an argument.
pub const MAX_NDIM: usize = 32;

/// Largest byte size (and element count, and dimension) of an array: NumPy's `intp`.
pub const MAX_ARRAY_BYTES: u64 = isize::MAX as u64;

/// Checks that an array of `shape` and `dtype` can exist in NumPy: at most [`MAX_NDIM`]
/// dimensions, and its size in bytes, counting only the non-zero dimensions (so that an empty
/// array's rows still have a size), within `intp`. Returns the size in bytes.
pub fn check_shape(shape: &[u64], dtype: DataType) -> Result<u64, String> {
    if shape.len() > MAX_NDIM {
        return Err(format!("{} dimensions (at most {MAX_NDIM})", shape.len()));
    }
    shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(dtype.size_bytes() as u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ARRAY_BYTES)
        .ok_or_else(|| format!("shape {shape:?} of {dtype} is larger than NumPy allows"))?;
    Ok(if shape.contains(&0) {
        0
    } else {
        shape.iter().product::<u64>() * dtype.size_bytes() as u64
    })
}

/// Optional per-block compression description carried by a record (kept verbatim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// Whether block compression is enabled.
    pub enabled: u8,
    /// Block size in bytes.
    pub block_size: u64,
    /// Number of blocks.
    pub num_blocks: u64,
    /// `(offset, original size, compressed size)` of each block.
    pub blocks: Vec<(u64, u64, u64)>,
}

/// One array's record: physical shape, data file, timestamps, dtype, compression fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayMetadata {
    /// The array's name.
    pub name: String,
    /// Physical shape: dimension 0 counts deleted rows too. Empty for a 0-d array.
    pub shape: Vec<u64>,
    /// Data file name, relative to the store directory.
    pub data_file: String,
    /// Last modification, microseconds since the Unix epoch.
    pub last_modified: u64,
    /// `product(shape) * itemsize`.
    pub size_bytes: u64,
    /// Element type.
    pub dtype: DataType,
    /// Compression algorithm code (0 none, 1 zstd); only 0 is readable.
    pub compression: u8,
    /// Compression level.
    pub compression_level: u32,
    /// Original size when compressed.
    pub original_size: u64,
    /// Compressed size when compressed.
    pub compressed_size: u64,
    /// Block compression description, if any.
    pub block_info: Option<BlockInfo>,
}

impl ArrayMetadata {
    /// A fresh uncompressed record.
    pub fn new(name: &str, shape: Vec<u64>, dtype: DataType, data_file: String, now: u64) -> Self {
        let size_bytes = shape.iter().product::<u64>() * dtype.size_bytes() as u64;
        ArrayMetadata {
            name: name.to_owned(),
            shape,
            data_file,
            last_modified: now,
            size_bytes,
            dtype,
            compression: 0,
            compression_level: 0,
            original_size: 0,
            compressed_size: 0,
            block_info: None,
        }
    }

    /// The stored dtype.
    pub fn get_dtype(&self) -> DataType {
        self.dtype
    }

    /// Number of elements of the physical array.
    pub fn total_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Physical rows (1 for a 0-d array).
    pub fn rows(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Bytes of one row (the whole element for a 0-d array).
    pub fn row_bytes(&self) -> u64 {
        self.shape.iter().skip(1).product::<u64>() * self.dtype.size_bytes() as u64
    }
}

/// The decoded metadata file: every array by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataFile {
    /// Records by array name (sorted, so files are written deterministically).
    pub arrays: BTreeMap<String, ArrayMetadata>,
}

impl MetadataFile {
    /// Sum of `size_bytes` of all arrays.
    pub fn total_size(&self) -> u64 {
        self.arrays.values().map(|a| a.size_bytes).sum()
    }

    /// Encodes the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.arrays.len() * 96);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.total_size().to_le_bytes());
        let count = u32::try_from(self.arrays.len()).expect("fewer than 2^32 arrays");
        out.extend_from_slice(&count.to_le_bytes());
        for a in self.arrays.values() {
            put_str(&mut out, &a.name);
            put_u32(&mut out, a.shape.len());
            for d in &a.shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            put_str(&mut out, &a.data_file);
            out.extend_from_slice(&a.last_modified.to_le_bytes());
            out.extend_from_slice(&a.size_bytes.to_le_bytes());
            out.push(a.dtype.code());
            out.push(a.compression);
            out.extend_from_slice(&a.compression_level.to_le_bytes());
            out.extend_from_slice(&a.original_size.to_le_bytes());
            out.extend_from_slice(&a.compressed_size.to_le_bytes());
            match &a.block_info {
                None => out.push(0),
                Some(b) => {
                    out.push(1);
                    out.push(b.enabled);
                    out.extend_from_slice(&b.block_size.to_le_bytes());
                    out.extend_from_slice(&b.num_blocks.to_le_bytes());
                    put_u32(&mut out, b.blocks.len());
                    for (o, s, c) in &b.blocks {
                        out.extend_from_slice(&o.to_le_bytes());
                        out.extend_from_slice(&s.to_le_bytes());
                        out.extend_from_slice(&c.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    /// Decodes the file. Every length is checked against the bytes left, every dtype code,
    /// shape and size is validated, every data file name must be a bare `data_*.npkd` name
    /// used by one record only; the error string says what is wrong (the caller adds the path).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Cursor::new(bytes);
        let magic = r.u32()?;
        if magic != MAGIC {
            return Err(format!(
                "bad magic 0x{magic:08X} (expected 0x{MAGIC:08X}, 'NPKB')"
            ));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(format!(
                "unsupported metadata version {version} (expected {VERSION})"
            ));
        }
        let _total = r.u64()?;
        let count = r.u32()? as usize;
        // The smallest record is 4+4+4+8+8+1+1+4+8+8+1 = 51 bytes: reject absurd counts early.
        if count > r.left() / 51 {
            return Err(format!("array count {count} does not fit in the file"));
        }
        let mut arrays = BTreeMap::new();
        let mut files: HashMap<String, String> = HashMap::with_capacity(count);
        for i in 0..count {
            let a = decode_record(&mut r).map_err(|e| format!("record {i}: {e}"))?;
            if arrays.contains_key(&a.name) {
                return Err(format!("record {i}: duplicate array name '{}'", a.name));
            }
            // One stem per array: the bitmap and index names derive from it.
            let stem = names::data_stem(&a.data_file)
                .unwrap_or(&a.data_file)
                .to_owned();
            if let Some(other) = files.insert(stem, a.name.clone()) {
                return Err(format!(
                    "record {i}: arrays '{other}' and '{}' both name the data file {}",
                    a.name, a.data_file
                ));
            }
            arrays.insert(a.name.clone(), a);
        }
        r.finish()?;
        Ok(MetadataFile { arrays })
    }
}

fn decode_record(r: &mut Cursor<'_>) -> Result<ArrayMetadata, String> {
    let name = r.string()?;
    names::validate(&name).map_err(|e| e.to_string())?;
    let ndim = r.u32()? as usize;
    if ndim > MAX_NDIM {
        return Err(format!(
            "array '{name}': {ndim} dimensions (at most {MAX_NDIM})"
        ));
    }
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        shape.push(r.u64()?);
    }
    let data_file = r.string()?;
    if !names::is_safe_data_file(&data_file) {
        return Err(format!(
            "array '{name}': unsafe data file name {data_file:?}"
        ));
    }
    let last_modified = r.u64()?;
    let size_bytes = r.u64()?;
    let code = r.u8()?;
    let dtype = DataType::from_code(code)
        .map_err(|_| format!("array '{name}': unknown dtype code {code}"))?;
    let compression = r.u8()?;
    let compression_level = r.u32()?;
    let original_size = r.u64()?;
    let compressed_size = r.u64()?;
    let block_info = match r.u8()? {
        0 => None,
        1 => {
            let enabled = r.u8()?;
            let block_size = r.u64()?;
            let num_blocks = r.u64()?;
            let n = r.u32()? as usize;
            if n > r.left() / 24 {
                return Err(format!("array '{name}': block count {n} does not fit"));
            }
            let mut blocks = Vec::with_capacity(n);
            for _ in 0..n {
                blocks.push((r.u64()?, r.u64()?, r.u64()?));
            }
            Some(BlockInfo {
                enabled,
                block_size,
                num_blocks,
                blocks,
            })
        }
        f => return Err(format!("array '{name}': bad block-info flag {f}")),
    };
    let expected = check_shape(&shape, dtype).map_err(|e| format!("array '{name}': {e}"))?;
    if expected != size_bytes {
        return Err(format!(
            "array '{name}': size_bytes {size_bytes} but shape {shape:?} of {dtype} needs {expected}"
        ));
    }
    Ok(ArrayMetadata {
        name,
        shape,
        data_file,
        last_modified,
        size_bytes,
        dtype,
        compression,
        compression_level,
        original_size,
        compressed_size,
        block_info,
    })
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).expect("length < 2^32").to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MetadataFile {
        let mut m = MetadataFile::default();
        let a = ArrayMetadata::new("x", vec![3, 2], DataType::Float32, "data_x.npkd".into(), 7);
        m.arrays.insert("x".into(), a);
        let mut b = ArrayMetadata::new("s", vec![], DataType::Int64, "data_s.npkd".into(), 9);
        b.block_info = Some(BlockInfo {
            enabled: 1,
            block_size: 65536,
            num_blocks: 1,
            blocks: vec![(0, 8, 8)],
        });
        m.arrays.insert("s".into(), b);
        m
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(MetadataFile::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(MetadataFile::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn absurd_counts_and_shapes_fail_without_allocating() {
        let mut bytes = sample().encode();
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(MetadataFile::decode(&bytes)
            .unwrap_err()
            .contains("does not fit"));
        let mut m = sample();
        m.arrays.get_mut("x").unwrap().shape = vec![u64::MAX, u64::MAX];
        assert!(MetadataFile::decode(&m.encode())
            .unwrap_err()
            .contains("larger than NumPy allows"));
    }

    #[test]
    fn unknown_dtype_code_is_rejected() {
        let mut bytes = MetadataFile {
            arrays: [(
                "x".to_owned(),
                ArrayMetadata::new("x", vec![1], DataType::Uint8, "data_x.npkd".into(), 0),
            )]
            .into(),
        }
        .encode();
        // dtype byte: 20 + (4+1) + 4 + 8 + (4+11) + 8 + 8 = 68
        assert_eq!(bytes[68], 1);
        bytes[68] = 99;
        assert!(MetadataFile::decode(&bytes)
            .unwrap_err()
            .contains("unknown dtype code 99"));
    }
}
