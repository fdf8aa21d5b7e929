#![no_main]
//! Fuzzes odai::fuzzing::protocol (what it feeds and why: src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| odai::fuzzing::protocol(data));
