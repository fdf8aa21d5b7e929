//! One module per subcommand, each with a typed `Config` built from the command line and an
//! `execute(&Config)`; shared output helpers live here.

pub mod probe;

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
