//! Fuzz target: `numpack::fuzz::package` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::package(data));

include!("../driver.rs");
