//! Fuzz target: `numpack::fuzz::journal` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::journal(data));

include!("../driver.rs");
