// The process entry point of every fuzz target (included by each): numkong's build script
// links its CPU-feature probes as static libraries, each with a `main` of its own, and the
// linker would take the first of those instead of libFuzzer's. A `main` in the target itself
// comes first and runs libFuzzer's driver.
extern "C" {
    fn LLVMFuzzerRunDriver(
        argc: *mut std::os::raw::c_int,
        argv: *mut *mut *mut std::os::raw::c_char,
        callback: unsafe extern "C" fn(*const u8, usize) -> std::os::raw::c_int,
    ) -> std::os::raw::c_int;
    fn LLVMFuzzerTestOneInput(data: *const u8, size: usize) -> std::os::raw::c_int;
}

#[no_mangle]
pub extern "C" fn main(
    mut argc: std::os::raw::c_int,
    mut argv: *mut *mut std::os::raw::c_char,
) -> std::os::raw::c_int {
    // SAFETY: argc/argv are the process's own, passed on unchanged; the callback is the
    // one libfuzzer-sys defines for this target.
    unsafe { LLVMFuzzerRunDriver(&mut argc, &mut argv, LLVMFuzzerTestOneInput) }
}
