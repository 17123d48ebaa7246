//! One line of a CSV or text file → one row of values.
//!
//! Fields are separated by one delimiter byte (spaces and tabs around a field are ignored) or
//! by runs of whitespace. A field may be quoted (`"1.5"`); an empty field is `NaN` for
//! floats and an error otherwise. A comment (`#` by default, or any strings) runs to the end
//! of the line; blank and comment-only lines hold no row. Quotes do not protect delimiters
//! or comment characters: the data is numeric.

use super::number_parse::{Field, FieldError};
use memchr::{memchr, memmem};

/// How fields are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    /// One byte (`,`, `;`, `\t`, `|`...).
    Byte(u8),
    /// Runs of spaces and tabs (leading and trailing ones ignored).
    Whitespace,
}

/// The lexical rules of a file.
#[derive(Debug, Clone)]
pub(crate) struct Syntax {
    pub delim: Delimiter,
    /// The comment marker when it is a single byte (checked inline).
    comment_byte: Option<u8>,
    /// Comment markers of several bytes, or several markers (lines are cut at the first).
    comment_strings: Vec<Vec<u8>>,
    pub quote: Option<u8>,
}

/// Which fields of a line become the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Every field; each line has exactly `ncols`.
    All { ncols: usize },
    /// The fields `cols` (0-based, in this order); each line has more than `max(cols)`.
    Select { cols: Vec<usize>, needed: usize },
}

impl Layout {
    /// Values per row.
    pub fn width(&self) -> usize {
        match self {
            Layout::All { ncols } => *ncols,
            Layout::Select { cols, .. } => cols.len(),
        }
    }
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineError {
    /// The line has `found` fields where `expected` are needed (`at_least` with usecols).
    Columns {
        expected: usize,
        found: usize,
        at_least: bool,
    },
    /// A field that does not convert.
    Field {
        column: usize,
        text: String,
        kind: FieldError,
        dtype: &'static str,
    },
    /// An empty field of a dtype without a missing value.
    Empty { column: usize, dtype: &'static str },
    /// A quote that is not closed on its line.
    Quote { column: usize },
}

impl LineError {
    /// The message after `file: line N, `.
    pub fn describe(&self) -> String {
        match self {
            LineError::Columns {
                expected,
                found,
                at_least,
            } => {
                let column = if found < expected {
                    found + 1
                } else {
                    expected + 1
                };
                let need = if *at_least { "at least " } else { "" };
                format!("column {column}: expected {need}{expected} columns, found {found}")
            }
            LineError::Field {
                column,
                text,
                kind: FieldError::Invalid,
                dtype,
            } => format!("column {column}: could not convert string {text:?} to {dtype}"),
            LineError::Field {
                column,
                text,
                kind: FieldError::Overflow,
                dtype,
            } => format!("column {column}: value {text:?} is out of range for {dtype}"),
            LineError::Empty { column, dtype } => {
                format!("column {column}: empty field cannot be converted to {dtype}")
            }
            LineError::Quote { column } => format!("column {column}: unterminated quote"),
        }
    }
}

#[inline]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl Syntax {
    /// Rules from the options (`comments` empty: no comments).
    pub fn new(delim: Delimiter, comments: &[Vec<u8>], quote: Option<u8>) -> Self {
        let comments: Vec<Vec<u8>> = comments.iter().filter(|c| !c.is_empty()).cloned().collect();
        let (comment_byte, comment_strings) = match comments.as_slice() {
            [one] if one.len() == 1 => (Some(one[0]), Vec::new()),
            _ => (None, comments),
        };
        Syntax {
            delim,
            comment_byte,
            comment_strings,
            quote,
        }
    }

    /// Whether the field separator is `b` (a run of whitespace counts for any blank).
    #[inline]
    fn is_space(&self, b: u8) -> bool {
        match self.delim {
            Delimiter::Byte(d) => (b == b' ' || b == b'\t') && b != d,
            Delimiter::Whitespace => is_blank(b),
        }
    }

    #[inline]
    fn skip_space(&self, line: &[u8], mut p: usize) -> usize {
        while p < line.len() && self.is_space(line[p]) {
            p += 1;
        }
        p
    }

    #[inline]
    fn is_comment(&self, line: &[u8], p: usize) -> bool {
        self.comment_byte.is_some_and(|c| line[p] == c)
    }

    /// Whether a field ends at `p`: end of line, comment, delimiter (or blank for whitespace).
    #[inline]
    fn ends_field(&self, line: &[u8], p: usize) -> bool {
        p == line.len()
            || self.is_comment(line, p)
            || match self.delim {
                Delimiter::Byte(d) => line[p] == d,
                Delimiter::Whitespace => is_blank(line[p]),
            }
    }

    /// The line without its `\r` and, for multi-byte comment markers, without its comment.
    #[inline]
    pub fn trim<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        for c in &self.comment_strings {
            if let Some(k) = memmem::find(line, c) {
                line = &line[..k];
            }
        }
        line
    }

    /// Whether a trimmed line holds no field (blank or comment only).
    pub fn is_empty_line(&self, line: &[u8]) -> bool {
        let p = line
            .iter()
            .position(|&b| !is_blank(b))
            .unwrap_or(line.len());
        p == line.len() || self.is_comment(line, p)
    }

    /// Field spans of a trimmed, non-empty line (`(start, end)`, untrimmed for delimiters).
    pub fn split(&self, line: &[u8], spans: &mut Vec<(usize, usize)>) {
        spans.clear();
        let end = match self.comment_byte {
            Some(c) => memchr(c, line).unwrap_or(line.len()),
            None => line.len(),
        };
        let line = &line[..end];
        match self.delim {
            Delimiter::Byte(d) => {
                let mut start = 0;
                for k in memchr::memchr_iter(d, line) {
                    spans.push((start, k));
                    start = k + 1;
                }
                spans.push((start, line.len()));
            }
            Delimiter::Whitespace => {
                let mut p = 0;
                loop {
                    while p < line.len() && is_blank(line[p]) {
                        p += 1;
                    }
                    if p == line.len() {
                        break;
                    }
                    let s = p;
                    while p < line.len() && !is_blank(line[p]) {
                        p += 1;
                    }
                    spans.push((s, p));
                }
            }
        }
    }

    /// Where the end of a field is expected after a value ending at `p`: past trailing
    /// blanks for a delimiter byte, right there for whitespace.
    #[inline]
    fn after_value(&self, line: &[u8], p: usize) -> usize {
        match self.delim {
            Delimiter::Byte(_) => self.skip_space(line, p),
            Delimiter::Whitespace => p,
        }
    }

    /// Text of the field starting at `p`, for messages.
    fn field_text(&self, line: &[u8], p: usize) -> String {
        let mut e = p;
        while !self.ends_field(line, e) {
            e += 1;
        }
        String::from_utf8_lossy(trim_blank(&line[p..e])).into_owned()
    }

    /// Parses the field at `p` (`column` 1-based); returns the value and the position of
    /// the byte that ends it (delimiter, comment or end of line).
    #[inline]
    fn field<T: Field>(
        &self,
        line: &[u8],
        p: usize,
        column: usize,
    ) -> Result<(T, usize), LineError> {
        let p = self.skip_space(line, p);
        if self.ends_field(line, p) {
            return T::empty().map(|v| (v, p)).ok_or(LineError::Empty {
                column,
                dtype: T::NAME,
            });
        }
        if Some(line[p]) == self.quote {
            let close = memchr(line[p], &line[p + 1..])
                .map(|k| p + 1 + k)
                .ok_or(LineError::Quote { column })?;
            let v = whole::<T>(&line[p + 1..close], column)?;
            let q = self.after_value(line, close + 1);
            if !self.ends_field(line, q) {
                return Err(self.bad(line, p, column, FieldError::Invalid, T::NAME));
            }
            return Ok((v, q));
        }
        match T::parse_prefix(&line[p..]) {
            Ok((v, k)) => {
                let q = self.after_value(line, p + k);
                if self.ends_field(line, q) {
                    Ok((v, q))
                } else {
                    Err(self.bad(line, p, column, FieldError::Invalid, T::NAME))
                }
            }
            Err(kind) => Err(self.bad(line, p, column, kind, T::NAME)),
        }
    }

    fn bad(
        &self,
        line: &[u8],
        p: usize,
        column: usize,
        kind: FieldError,
        dtype: &'static str,
    ) -> LineError {
        LineError::Field {
            column,
            text: self.field_text(line, p),
            kind,
            dtype,
        }
    }

    /// Fields from position `p` (just past a field) to the end of the line.
    fn more_fields(&self, line: &[u8], p: usize) -> usize {
        let mut spans = Vec::new();
        self.split(&line[p..], &mut spans);
        match self.delim {
            // `p` is at a delimiter: the split sees an empty first field before it.
            Delimiter::Byte(_) => spans.len() - 1,
            Delimiter::Whitespace => spans.len(),
        }
    }

    /// The common case at `pos` of `text`: `ncols` plain numbers separated by exactly the
    /// delimiter byte and ended by `\n`, `\r\n` or the end of `text`. Returns the position
    /// after the line; `None` leaves the line to [`Syntax::parse_line`] (which accepts all
    /// that this does, with the same values).
    #[inline]
    pub fn fast_row<T: Field>(
        &self,
        text: &[u8],
        pos: usize,
        ncols: usize,
        out: &mut [u8],
    ) -> Option<usize> {
        let Delimiter::Byte(d) = self.delim else {
            return None;
        };
        let size = std::mem::size_of::<T>();
        let mut p = pos;
        for (c, slot) in out.chunks_exact_mut(size).take(ncols).enumerate() {
            let (v, k) = T::parse_fast(&text[p..])?;
            slot.copy_from_slice(bytemuck::bytes_of(&v));
            p += k;
            let next = text.get(p).copied();
            if c + 1 < ncols {
                if next != Some(d) {
                    return None;
                }
                p += 1;
            } else {
                return match next {
                    None => Some(p),
                    Some(b'\n') => Some(p + 1),
                    Some(b'\r') if text.get(p + 1) == Some(&b'\n') => Some(p + 2),
                    Some(_) => None,
                };
            }
        }
        None
    }

    /// Parses a trimmed line into `out` (the row's bytes). `Ok(false)`: no row on this line.
    #[inline]
    pub fn parse_line<T: Field>(
        &self,
        line: &[u8],
        layout: &Layout,
        out: &mut [u8],
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<bool, LineError> {
        if self.is_empty_line(line) {
            return Ok(false);
        }
        let ncols = match layout {
            Layout::All { ncols } => *ncols,
            Layout::Select { cols, needed } => {
                return self
                    .parse_selected::<T>(line, cols, *needed, out, spans)
                    .map(|()| true)
            }
        };
        let size = std::mem::size_of::<T>();
        let mut p = 0;
        for col in 0..ncols {
            let (v, q) = match self.delim {
                Delimiter::Byte(_) => self.field::<T>(line, p, col + 1)?,
                Delimiter::Whitespace => {
                    let s = self.skip_space(line, p);
                    if s == line.len() || self.is_comment(line, s) {
                        return Err(LineError::Columns {
                            expected: ncols,
                            found: col,
                            at_least: false,
                        });
                    }
                    self.field::<T>(line, s, col + 1)?
                }
            };
            out[col * size..(col + 1) * size].copy_from_slice(bytemuck::bytes_of(&v));
            let at_end = match self.delim {
                Delimiter::Byte(_) => q == line.len() || self.is_comment(line, q),
                Delimiter::Whitespace => {
                    let s = self.skip_space(line, q);
                    s == line.len() || self.is_comment(line, s)
                }
            };
            if col + 1 < ncols {
                if at_end {
                    return Err(LineError::Columns {
                        expected: ncols,
                        found: col + 1,
                        at_least: false,
                    });
                }
                p = if matches!(self.delim, Delimiter::Byte(_)) {
                    q + 1
                } else {
                    q
                };
            } else if !at_end {
                return Err(LineError::Columns {
                    expected: ncols,
                    found: ncols + self.more_fields(line, q),
                    at_least: false,
                });
            }
        }
        Ok(true)
    }

    fn parse_selected<T: Field>(
        &self,
        line: &[u8],
        cols: &[usize],
        needed: usize,
        out: &mut [u8],
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<(), LineError> {
        self.split(line, spans);
        if spans.len() < needed {
            return Err(LineError::Columns {
                expected: needed,
                found: spans.len(),
                at_least: true,
            });
        }
        let size = std::mem::size_of::<T>();
        for (k, &c) in cols.iter().enumerate() {
            let (s, e) = spans[c];
            let text = trim_blank(&line[s..e]);
            let v = if text.is_empty() {
                T::empty().ok_or(LineError::Empty {
                    column: c + 1,
                    dtype: T::NAME,
                })?
            } else if Some(text[0]) == self.quote {
                match text[1..].iter().position(|&b| b == text[0]) {
                    Some(k) if k + 2 == text.len() => whole::<T>(&text[1..=k], c + 1)?,
                    Some(_) => return Err(self.bad(line, s, c + 1, FieldError::Invalid, T::NAME)),
                    None => return Err(LineError::Quote { column: c + 1 }),
                }
            } else {
                whole::<T>(text, c + 1)?
            };
            out[k * size..(k + 1) * size].copy_from_slice(bytemuck::bytes_of(&v));
        }
        Ok(())
    }
}

fn trim_blank(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_blank(b))
        .map_or(start, |k| k + 1);
    &s[start..end]
}

/// Parses all of `text` (surrounding blanks ignored) as one value.
fn whole<T: Field>(text: &[u8], column: usize) -> Result<T, LineError> {
    let text = trim_blank(text);
    let err = |kind| LineError::Field {
        column,
        text: String::from_utf8_lossy(text).into_owned(),
        kind,
        dtype: T::NAME,
    };
    if text.is_empty() {
        return T::empty().ok_or(LineError::Empty {
            column,
            dtype: T::NAME,
        });
    }
    match T::parse_prefix(text) {
        Ok((v, n)) if n == text.len() => Ok(v),
        Ok(_) => Err(err(FieldError::Invalid)),
        Err(kind) => Err(err(kind)),
    }
}
