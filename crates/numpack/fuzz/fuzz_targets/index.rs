//! Fuzz target: `numpack::fuzz::index` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::index(data));

include!("../driver.rs");
