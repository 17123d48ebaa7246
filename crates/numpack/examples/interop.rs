//! Writes or dumps a store through the Rust API; the Python tests use it to check that stores
//! move both ways between the Rust API and the Python package.
//!
//! `interop write DIR` saves a fixed set of arrays; `interop dump DIR` prints one line per
//! array: `name dtype shape sum-of-elements-as-f64` (logical rows).

use ndarray::{ArrayD, IxDyn};
use numpack::prelude::*;

fn sum(io: &ParallelIO, name: &str) -> NpkResult<f64> {
    let dtype = io.get_array_metadata(name)?.dtype;
    macro_rules! total {
        ($t:ty, $f:expr) => {
            io.load_array::<$t>(name)?.iter().map($f).sum::<f64>()
        };
    }
    Ok(match dtype {
        DataType::Bool => total!(bool, |&v| f64::from(u8::from(v))),
        DataType::Uint8 => total!(u8, |&v| f64::from(v)),
        DataType::Uint16 => total!(u16, |&v| f64::from(v)),
        DataType::Uint32 => total!(u32, |&v| f64::from(v)),
        DataType::Uint64 => total!(u64, |&v| v as f64),
        DataType::Int8 => total!(i8, |&v| f64::from(v)),
        DataType::Int16 => total!(i16, |&v| f64::from(v)),
        DataType::Int32 => total!(i32, |&v| f64::from(v)),
        DataType::Int64 => total!(i64, |&v| v as f64),
        DataType::Float16 => total!(half::f16, |&v| f64::from(v)),
        DataType::Float32 => total!(f32, |&v| f64::from(v)),
        DataType::Float64 => total!(f64, |&v| v),
        DataType::Complex64 => total!(num_complex::Complex32, |&v| f64::from(v.re + v.im)),
        DataType::Complex128 => total!(num_complex::Complex64, |&v| v.re + v.im),
        DataType::Bfloat16 => total!(half::bf16, |&v| f64::from(v)),
        DataType::Float8E4M3FN => total!(numpack::dtype::F8E4M3FN, |&v| f64::from(v.to_f32())),
        DataType::Float8E5M2 => total!(numpack::dtype::F8E5M2, |&v| f64::from(v.to_f32())),
    })
}

fn main() -> NpkResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let (cmd, dir) = match args.as_slice() {
        [_, cmd, dir] => (cmd.as_str(), dir.as_str()),
        _ => {
            eprintln!("usage: interop write|dump DIR");
            std::process::exit(2);
        }
    };
    let io = ParallelIO::new(dir)?;
    match cmd {
        "write" => {
            let a = ArrayD::from_shape_fn(IxDyn(&[100, 4]), |i| (i[0] * 4 + i[1]) as f32);
            io.save_arrays(&[("rust_f32".to_string(), a, DataType::Float32)])?;
            let b = ArrayD::from_shape_fn(IxDyn(&[10]), |i| i[0] as i64 - 5);
            io.save_arrays(&[("rust_i64".to_string(), b, DataType::Int64)])?;
            let c = ArrayD::from_shape_fn(IxDyn(&[6, 2, 2]), |i| i[0] % 2 == 0);
            io.save_arrays(&[("rust_bool".to_string(), c, DataType::Bool)])?;
            io.drop_arrays("rust_f32", Some(&[0, -1]))?;
            io.sync_metadata()?;
        }
        "dump" => {
            for name in io.list_arrays() {
                let meta = io.get_array_metadata(&name)?;
                let shape = io.get_shape(&name)?;
                println!("{name}\t{}\t{shape:?}\t{}", meta.dtype, sum(&io, &name)?);
            }
        }
        _ => {
            eprintln!("unknown command {cmd}");
            std::process::exit(2);
        }
    }
    Ok(())
}
