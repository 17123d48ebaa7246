//! printf-style row formats, as Python's `%` operator (and so `np.savetxt`) applies them.
//!
//! A row format is literal text with one conversion per column: `%[flags][width][.prec]conv`
//! with flags `-+ 0#`, an optional ignored length modifier (`h`, `l`, `L`) and the
//! conversions `d i u` (integers; floats are truncated toward zero), `f F e E g G` (floats;
//! integers are converted), `x X o` (integers only) and `s` (the shortest round-trip text).
//! `%%` is a literal `%`. Anything else (`%r`, `%c`, `*` widths, mapping keys) is rejected,
//! so the caller can fall back to Python.

use super::number_format::PrintfValue;
use std::fmt::Write as _;

/// One `%` conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    conv: u8,
}

/// A piece of a row format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Literal(Vec<u8>),
    /// A conversion of the next column.
    Conversion(Spec),
}

/// A parsed row format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFormat {
    pieces: Vec<Piece>,
}

/// Why a value could not be formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl RowFormat {
    /// Parses `fmt`; an unsupported conversion is an error naming it.
    pub fn parse(fmt: &str) -> Result<Self, String> {
        let b = fmt.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            if b.get(i + 1) == Some(&b'%') {
                lit.push(b'%');
                i += 2;
                continue;
            }
            let start = i;
            i += 1;
            let mut spec = Spec {
                minus: false,
                plus: false,
                space: false,
                zero: false,
                alt: false,
                width: 0,
                precision: None,
                conv: 0,
            };
            while let Some(&c) = b.get(i) {
                match c {
                    b'-' => spec.minus = true,
                    b'+' => spec.plus = true,
                    b' ' => spec.space = true,
                    b'0' => spec.zero = true,
                    b'#' => spec.alt = true,
                    _ => break,
                }
                i += 1;
            }
            let number = |i: &mut usize| {
                let mut n = 0usize;
                while let Some(&c) = b.get(*i).filter(|c| c.is_ascii_digit()) {
                    n = n.saturating_mul(10).saturating_add(usize::from(c - b'0'));
                    *i += 1;
                }
                n
            };
            spec.width = number(&mut i);
            if b.get(i) == Some(&b'.') {
                i += 1;
                spec.precision = Some(number(&mut i));
            }
            while matches!(b.get(i), Some(b'h' | b'l' | b'L')) {
                i += 1;
            }
            match b.get(i) {
                Some(&c) if b"diufFeEgGxXos".contains(&c) => spec.conv = c,
                _ => {
                    let end = (i + 1).min(b.len());
                    return Err(format!(
                        "unsupported conversion {:?} in fmt {fmt:?}",
                        String::from_utf8_lossy(&b[start..end])
                    ));
                }
            }
            i += 1;
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Conversion(spec));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(RowFormat { pieces })
    }

    /// Number of conversions (columns) in the format.
    pub fn conversions(&self) -> usize {
        self.pieces
            .iter()
            .filter(|p| matches!(p, Piece::Conversion(_)))
            .count()
    }

    /// The pieces in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }
}

impl Spec {
    /// Appends `v` formatted by this conversion.
    pub fn write(
        &self,
        v: PrintfValue,
        out: &mut Vec<u8>,
        tmp: &mut String,
    ) -> Result<(), FormatError> {
        tmp.clear();
        let (neg, body_is_number) = match self.conv {
            b'd' | b'i' | b'u' => {
                let n = match v {
                    PrintfValue::Int(n) => n,
                    PrintfValue::Bool(b) => i128::from(b),
                    PrintfValue::F32(x) => float_to_int(f64::from(x))?,
                    PrintfValue::F64(x) => float_to_int(x)?,
                };
                int_digits(n.unsigned_abs(), 10, false, self.precision, tmp);
                (n < 0, true)
            }
            b'x' | b'X' | b'o' => {
                let n = match v {
                    PrintfValue::Int(n) => n,
                    PrintfValue::Bool(b) => i128::from(b),
                    _ => {
                        return Err(FormatError(format!(
                            "%{} format: an integer is required, not a float",
                            self.conv as char
                        )))
                    }
                };
                let radix = if self.conv == b'o' { 8 } else { 16 };
                if self.alt {
                    tmp.push_str(match self.conv {
                        b'x' => "0x",
                        b'X' => "0X",
                        _ => "0o",
                    });
                }
                int_digits(
                    n.unsigned_abs(),
                    radix,
                    self.conv == b'X',
                    self.precision,
                    tmp,
                );
                (n < 0, true)
            }
            b's' => {
                let mut text = Vec::new();
                match v {
                    PrintfValue::Int(n) => text.extend_from_slice(n.to_string().as_bytes()),
                    PrintfValue::Bool(b) => {
                        text.extend_from_slice(if b { b"True" } else { b"False" })
                    }
                    PrintfValue::F32(x) => {
                        super::number_format::Shortest::write_shortest(x, &mut text)
                    }
                    PrintfValue::F64(x) => {
                        super::number_format::Shortest::write_shortest(x, &mut text)
                    }
                }
                tmp.push_str(std::str::from_utf8(&text).unwrap_or(""));
                self.pad(out, false, tmp, false);
                return Ok(());
            }
            _ => {
                let x = match v {
                    PrintfValue::Int(n) => n as f64,
                    PrintfValue::Bool(b) => f64::from(u8::from(b)),
                    PrintfValue::F32(x) => f64::from(x),
                    PrintfValue::F64(x) => x,
                };
                let finite = x.is_finite();
                float_body(x.abs(), self, tmp);
                (x.is_sign_negative() && !x.is_nan(), finite)
            }
        };
        self.pad(out, neg, tmp, body_is_number);
        Ok(())
    }

    /// Writes sign, padding and `body` as C does (`0` pads after the sign, for numbers).
    fn pad(&self, out: &mut Vec<u8>, neg: bool, body: &str, zero_ok: bool) {
        let sign: &[u8] = if neg {
            b"-"
        } else if self.plus && self.conv != b's' {
            b"+"
        } else if self.space && self.conv != b's' {
            b" "
        } else {
            b""
        };
        let len = sign.len() + body.len();
        let fill = self.width.saturating_sub(len);
        if self.minus {
            out.extend_from_slice(sign);
            out.extend_from_slice(body.as_bytes());
            out.resize(out.len() + fill, b' ');
        } else if self.zero && zero_ok && !(self.precision.is_some() && is_int_conv(self.conv)) {
            out.extend_from_slice(sign);
            out.resize(out.len() + fill, b'0');
            out.extend_from_slice(body.as_bytes());
        } else {
            out.resize(out.len() + fill, b' ');
            out.extend_from_slice(sign);
            out.extend_from_slice(body.as_bytes());
        }
    }
}

fn is_int_conv(c: u8) -> bool {
    matches!(c, b'd' | b'i' | b'u' | b'x' | b'X' | b'o')
}

fn float_to_int(x: f64) -> Result<i128, FormatError> {
    if !x.is_finite() {
        return Err(FormatError(format!("cannot convert float {x} to integer")));
    }
    let t = x.trunc();
    if t.abs() >= 1.7e38 {
        return Err(FormatError(format!("float {x} is too large for %d")));
    }
    Ok(t as i128)
}

fn int_digits(n: u128, radix: u32, upper: bool, min_digits: Option<usize>, out: &mut String) {
    let digits = match (radix, upper) {
        (16, true) => format!("{n:X}"),
        (16, false) => format!("{n:x}"),
        (8, _) => format!("{n:o}"),
        _ => n.to_string(),
    };
    for _ in digits.len()..min_digits.unwrap_or(0) {
        out.push('0');
    }
    out.push_str(&digits);
}

/// `|x|` in `%e`: mantissa with `prec` decimals and a C exponent (`e+05`).
fn exp_body(x: f64, prec: usize, upper: bool, alt: bool, out: &mut String) -> i32 {
    let s = format!("{x:.prec$e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    out.push_str(mant);
    if alt && prec == 0 {
        out.push('.');
    }
    out.push(if upper { 'E' } else { 'e' });
    out.push(if e < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", e.unsigned_abs());
    e
}

fn float_body(x: f64, spec: &Spec, out: &mut String) {
    let upper = matches!(spec.conv, b'F' | b'E' | b'G');
    if !x.is_finite() {
        let t = if x.is_nan() { "nan" } else { "inf" };
        out.push_str(&if upper {
            t.to_uppercase()
        } else {
            t.to_owned()
        });
        return;
    }
    let prec = spec.precision.unwrap_or(6);
    match spec.conv {
        b'f' | b'F' => {
            let _ = write!(out, "{x:.prec$}");
            if spec.alt && prec == 0 {
                out.push('.');
            }
        }
        b'e' | b'E' => {
            exp_body(x, prec, upper, spec.alt, out);
        }
        _ => {
            // %g: precision P significant digits; %e when the exponent X < -4 or X >= P.
            let p = prec.max(1);
            let mut probe = String::new();
            let e = if x == 0.0 {
                0
            } else {
                exp_body(x, p - 1, false, false, &mut probe)
            };
            let start = out.len();
            if e < -4 || e >= p as i32 {
                exp_body(x, p - 1, upper, spec.alt, out);
                if !spec.alt {
                    let epos = out[start..]
                        .find(['e', 'E'])
                        .map_or(out.len(), |k| start + k);
                    let exp = out[epos..].to_owned();
                    out.truncate(epos);
                    strip_zeros(out, start);
                    out.push_str(&exp);
                }
            } else {
                let decimals = (p as i32 - 1 - e).max(0) as usize;
                let _ = write!(out, "{x:.decimals$}");
                if spec.alt {
                    if decimals == 0 {
                        out.push('.');
                    }
                } else {
                    strip_zeros(out, start);
                }
            }
        }
    }
}

/// Removes trailing zeros of a fraction (and the point if nothing remains).
fn strip_zeros(s: &mut String, start: usize) {
    if s[start..].contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, v: PrintfValue) -> String {
        let rf = RowFormat::parse(f).unwrap();
        let mut out = Vec::new();
        let mut tmp = String::new();
        for p in rf.pieces() {
            match p {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Conversion(s) => s.write(v, &mut out, &mut tmp).unwrap(),
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn like_python() {
        use PrintfValue::{Int, F64};
        assert_eq!(fmt("%.18e", F64(0.1)), "1.000000000000000056e-01");
        assert_eq!(fmt("%.18e", F64(-0.0)), "-0.000000000000000000e+00");
        assert_eq!(fmt("%e", F64(1e300)), "1.000000e+300");
        assert_eq!(fmt("%.3f", F64(2.0005)), "2.001");
        assert_eq!(fmt("%.0f", F64(0.5)), "0");
        assert_eq!(fmt("%.0f", F64(1.5)), "2");
        assert_eq!(fmt("%g", F64(0.0001)), "0.0001");
        assert_eq!(fmt("%g", F64(0.00001)), "1e-05");
        assert_eq!(fmt("%g", F64(123456.0)), "123456");
        assert_eq!(fmt("%g", F64(1234567.0)), "1.23457e+06");
        assert_eq!(fmt("%g", F64(0.0)), "0");
        assert_eq!(fmt("%#g", F64(1.0)), "1.00000");
        assert_eq!(fmt("%.3g", F64(99.95)), "100");
        assert_eq!(fmt("%d", F64(-1.7)), "-1");
        assert_eq!(fmt("%05d", Int(-42)), "-0042");
        assert_eq!(fmt("%-5d|", Int(42)), "42   |");
        assert_eq!(fmt("%+.2f", F64(1.0)), "+1.00");
        assert_eq!(fmt("%10.3e", F64(f64::INFINITY)), "       inf");
        assert_eq!(fmt("%010.3f", F64(f64::NAN)), "       nan");
        assert_eq!(fmt("%E", F64(f64::NAN)), "NAN");
        assert_eq!(fmt("%#x", Int(255)), "0xff");
        assert_eq!(fmt("%o", Int(8)), "10");
        assert_eq!(fmt("%s", F64(0.1)), "0.1");
        assert_eq!(fmt("%ld%%", Int(3)), "3%");
        assert!(RowFormat::parse("%r").is_err());
        assert!(RowFormat::parse("%*d").is_err());
    }
}
