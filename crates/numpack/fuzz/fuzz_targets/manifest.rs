//! Fuzz target: `numpack::fuzz::manifest` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::manifest(data));

include!("../driver.rs");
