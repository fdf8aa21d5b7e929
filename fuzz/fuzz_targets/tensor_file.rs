#![no_main]
//! Fuzzes odai::fuzzing::tensor_file (what it feeds and why: src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| odai::fuzzing::tensor_file(data));
