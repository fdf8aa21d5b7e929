#![no_main]
//! Fuzzes odai::fuzzing::toml_files (what it feeds and why: src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| odai::fuzzing::toml_files(data));
