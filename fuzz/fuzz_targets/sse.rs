#![no_main]
//! Fuzzes odai::fuzzing::sse (what it feeds and why: src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| odai::fuzzing::sse(data));
