//! The one byte reader of every decoder (metadata, journal, undo record, package table):
//! little-endian integers and length-prefixed strings, each length checked against the bytes
//! left before anything is allocated.

/// Longest string a decoder accepts (array names; file names are shorter still).
pub const MAX_STRING: usize = 1 << 20;

/// A position in a byte slice. Errors are strings saying what was wrong where; the caller
/// adds the file.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The offset of the next byte.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "truncated: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.left()
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A `u32`-length-prefixed UTF-8 string of at most [`MAX_STRING`] bytes.
    pub fn string(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        if n > MAX_STRING {
            return Err(format!(
                "string of {n} bytes at offset {} (at most {MAX_STRING})",
                self.pos
            ));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "string is not UTF-8".to_owned())
    }

    /// A string that is a bare file name: no separator or NUL, not `.` or `..`, at most 255
    /// bytes, so that joined to a directory it names an entry of that directory.
    pub fn file_name(&mut self) -> Result<String, String> {
        let s = self.string()?;
        if !is_bare_name(&s) {
            return Err(format!("{s:?} is not a bare file name"));
        }
        Ok(s)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), String> {
        match self.left() {
            0 => Ok(()),
            n => Err(format!("{n} unexpected trailing bytes")),
        }
    }
}

/// Whether `s` names an entry of a directory it is joined to (and nothing below or above).
pub fn is_bare_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_reading() {
        let mut c = Cursor::new(&[5, 0, 0, 0, b'a']);
        assert!(c.string().unwrap_err().contains("truncated"));
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(c.string().unwrap_err().contains("at most"));
        let mut c = Cursor::new(&[2, 0, 0, 0, b'.', b'.']);
        assert!(c.file_name().is_err());
        let mut c = Cursor::new(&[1, 2]);
        assert!(c.u32().is_err());
        assert_eq!(c.u8(), Ok(1));
        assert!(c.finish().is_err());
    }
}
