//! Fuzz target: `numpack::fuzz::metadata` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::metadata(data));

include!("../driver.rs");
