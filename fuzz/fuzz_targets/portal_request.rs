//! Fuzz target `portal_request`: see `rolecall::fuzzing::portal_request` for what it feeds and checks, and
//! docs/fuzzing.md for how to run it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rolecall::fuzzing::portal_request(data);
});
