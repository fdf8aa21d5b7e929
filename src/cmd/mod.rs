//! One module per subcommand, each with a typed `Config` built from the command line and an
//! `execute(&Config)`; shared output helpers live here.

pub mod bench;
pub mod bench_tensor;
pub mod compare;
pub mod completions;
pub mod db;
pub mod farm;
pub mod generate;
pub mod matrix;
pub mod model;
pub mod probe;
pub mod profile;
pub mod quality;
pub mod report;
pub mod route;
pub mod worker;

use std::io::{self, Write};

use anyhow::Context;

/// Writes `text` to stdout (styles stripped per NO_COLOR / terminal). A closed pipe
/// (`odai probe | head`) is not an error: the reader has what it wanted.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

/// `value` as pretty JSON with a trailing newline, unavailable readings in contract form.
pub fn json_text<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let v = crate::sysroot::to_contract_json(value).context("cannot serialize the output")?;
    let mut s = serde_json::to_string_pretty(&v).context("cannot serialize the output")?;
    s.push('\n');
    Ok(s)
}

/// `value` as one compact JSON line (JSON Lines), unavailable readings in contract form.
pub fn json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let v = crate::sysroot::to_contract_json(value).context("cannot serialize the output")?;
    let mut s = serde_json::to_string(&v).context("cannot serialize the output")?;
    s.push('\n');
    Ok(s)
}
