//! Number → text: the shortest text that reads back to the same value, for every dtype.
//!
//! Floats use `zmij` (shortest round trip, like Python's `repr`): `0.1`, `1.0`, `1e+20`,
//! `-0.0`, with `nan`, `inf`, `-inf`. `float16` takes the fewest significant digits that
//! read back (through `f64`, as NumPy reads) to the same half. Complex values are written
//! as Python writes them, without parentheses (`1.5-2.0j`, `nan+infj`); bools as `1`/`0`.

use half::f16;
use num_complex::Complex;

/// An element type with a shortest round-trip text form.
pub trait Shortest: bytemuck::Pod + Send + Sync {
    /// Appends the text of `self` to `out`.
    fn write_shortest(self, out: &mut Vec<u8>);

    /// The value as printf sees it.
    fn printf_value(self) -> PrintfValue;
}

/// An element as printf conversions see it.
#[derive(Debug, Clone, Copy)]
pub enum PrintfValue {
    /// Any integer.
    Int(i128),
    /// A bool (`%s` writes `True`/`False`, numeric conversions 1/0).
    Bool(bool),
    /// A float whose shortest text is that of an `f32` (float16 and float32).
    F32(f32),
    /// A float64.
    F64(f64),
}

#[inline]
fn nonfinite(v: f64, out: &mut Vec<u8>) -> bool {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else {
        return false;
    }
    true
}

/// Appends zmij's text with a two-digit exponent, as Python writes it (`1e-07`).
#[inline]
fn push_float(text: &str, out: &mut Vec<u8>) {
    let b = text.as_bytes();
    match b.len().checked_sub(3) {
        Some(k) if b[k] == b'e' => {
            out.extend_from_slice(&b[..k + 2]);
            out.push(b'0');
            out.push(b[k + 2]);
        }
        _ => out.extend_from_slice(b),
    }
}

impl Shortest for f64 {
    #[inline]
    fn write_shortest(self, out: &mut Vec<u8>) {
        if !nonfinite(self, out) {
            push_float(zmij::Buffer::new().format_finite(self), out);
        }
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::F64(self)
    }
}

impl Shortest for f32 {
    #[inline]
    fn write_shortest(self, out: &mut Vec<u8>) {
        if !nonfinite(f64::from(self), out) {
            push_float(zmij::Buffer::new().format_finite(self), out);
        }
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::F32(self)
    }
}

/// The `f64` nearest to the fewest significant digits that read back to `v`.
fn shortest_half(v: f16) -> f64 {
    let x = f64::from(v);
    for digits in 1..=5 {
        let text = format!("{:.*e}", digits - 1, x);
        if let Ok(y) = text.parse::<f64>() {
            if f16::from_f64(y) == v {
                return y;
            }
        }
    }
    x
}

impl Shortest for f16 {
    fn write_shortest(self, out: &mut Vec<u8>) {
        let x = f64::from(self);
        if !nonfinite(x, out) {
            let y = if x == 0.0 { x } else { shortest_half(self) };
            push_float(zmij::Buffer::new().format_finite(y), out);
        }
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::F32(f32::from(self))
    }
}

impl Shortest for half::bf16 {
    fn write_shortest(self, out: &mut Vec<u8>) {
        let x = f64::from(self);
        if !nonfinite(x, out) {
            // The fewest digits that read back to this bfloat16.
            let mut y = x;
            for digits in 1..=4 {
                let text = format!("{:.*e}", digits - 1, x);
                if let Ok(t) = text.parse::<f64>() {
                    if half::bf16::from_f64(t) == self {
                        y = t;
                        break;
                    }
                }
            }
            push_float(
                zmij::Buffer::new().format_finite(if x == 0.0 { x } else { y }),
                out,
            );
        }
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::F32(f32::from(self))
    }
}

macro_rules! f8_shortest {
    ($t:ty) => {
        impl Shortest for $t {
            fn write_shortest(self, out: &mut Vec<u8>) {
                // Every float8 value is a float32: its shortest float32 text.
                self.to_f32().write_shortest(out);
            }
            fn printf_value(self) -> PrintfValue {
                PrintfValue::F32(self.to_f32())
            }
        }
    };
}
f8_shortest!(crate::dtype::F8E4M3FN);
f8_shortest!(crate::dtype::F8E5M2);

fn write_complex<T: Shortest + Into<f64>>(re: T, im: T, out: &mut Vec<u8>) {
    re.write_shortest(out);
    let imf: f64 = im.into();
    if !imf.is_sign_negative() || imf.is_nan() {
        out.push(b'+');
    }
    im.write_shortest(out);
    out.push(b'j');
}

impl Shortest for Complex<f64> {
    fn write_shortest(self, out: &mut Vec<u8>) {
        write_complex(self.re, self.im, out);
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::F64(self.re)
    }
}

impl Shortest for Complex<f32> {
    fn write_shortest(self, out: &mut Vec<u8>) {
        write_complex(self.re, self.im, out);
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::F32(self.re)
    }
}

macro_rules! int_shortest {
    ($($t:ty),*) => {$(
        impl Shortest for $t {
            #[inline]
            fn write_shortest(self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(self).as_bytes());
            }
            fn printf_value(self) -> PrintfValue {
                PrintfValue::Int(i128::from(self))
            }
        }
    )*};
}

int_shortest!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Shortest for super::number_parse::BoolByte {
    #[inline]
    fn write_shortest(self, out: &mut Vec<u8>) {
        out.push(if self.0 != 0 { b'1' } else { b'0' });
    }
    fn printf_value(self) -> PrintfValue {
        PrintfValue::Bool(self.0 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<T: Shortest>(v: T) -> String {
        let mut out = Vec::new();
        v.write_shortest(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn specials_and_halves() {
        assert_eq!(text(f64::NAN), "nan");
        assert_eq!(text(f32::NEG_INFINITY), "-inf");
        assert_eq!(text(-0.0f64), "-0.0");
        assert_eq!(text(f16::from_f32(0.1)), "0.1");
        assert_eq!(text(f16::from_f32(-0.0)), "-0.0");
        assert_eq!(text(f16::MAX), "65500.0");
        assert_eq!(text(1e-7f64), "1e-07");
        assert_eq!(text(1e20f32), "1e+20");
        assert_eq!(text(5e-324f64), "5e-324");
        assert_eq!(text(Complex::new(1.5f64, -2.0)), "1.5-2.0j");
        assert_eq!(text(Complex::new(0.0f32, f32::NAN)), "0.0+nanj");
        assert_eq!(text(Complex::new(1.0f64, -0.0)), "1.0-0.0j");
    }
}
