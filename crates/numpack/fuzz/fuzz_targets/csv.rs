//! Fuzz target: `numpack::fuzz::csv` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::csv(data));

include!("../driver.rs");
