//! Fuzz target `whmcs_response`: see `rolecall::fuzzing::whmcs_response` for what it feeds and checks, and
//! docs/fuzzing.md for how to run it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rolecall::fuzzing::whmcs_response(data));
