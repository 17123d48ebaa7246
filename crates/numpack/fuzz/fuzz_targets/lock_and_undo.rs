//! Fuzz target: `numpack::fuzz::lock_and_undo` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| numpack::fuzz::lock_and_undo(data));

include!("../driver.rs");
