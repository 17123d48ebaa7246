//! Fuzz target: `numpack::fuzz::bitmap` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::bitmap(data));

include!("../driver.rs");
