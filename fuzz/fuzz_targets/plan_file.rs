//! Fuzz target `plan_file`: see `rolecall::fuzzing::plan_file` for what it feeds and checks, and
//! docs/fuzzing.md for how to run it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rolecall::fuzzing::plan_file(data));
