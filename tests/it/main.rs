//! odai's integration tests, one binary (as ripgrep keeps them): each module drives the real
//! `odai` binary against fixtures, real model files and real servers. One binary links odai's
//! dependencies once instead of once per test file. A module that needs a feature or a platform
//! says so with its own `#![cfg(...)]`.
//!
//! Run one area with a filter: `cargo test --test it farm::` (the module name is the first
//! part of every test's path).

#![cfg(unix)]

mod common;

mod bench;
mod cli;
mod engine_reference;
mod farm;
mod faults;
mod gpu_check;
mod gpu_llama;
mod matrix;
mod memory;
mod model_errors;
mod probe_cli;
mod probe_fixtures;
mod profile;
mod quality;
mod report;
mod route;
mod runtimes;
mod sustained;
mod synth;
mod tensor;
mod tokenizer;
