//! `odai worker` (hidden): one benchmark repetition for a coordinator, speaking the versioned
//! protocol — a `CellSpec` JSON line in, `Event` JSON lines out.

use std::io::{BufRead, Write};

use crate::bench::worker;
use crate::exit;
use crate::protocol::{self, CellSpec, Event};

fn say(event: &Event) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, event)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

pub fn execute() -> anyhow::Result<i32> {
    say(&Event::Hello {
        protocol: protocol::PROTOCOL_VERSION,
        odai_version: env!("CARGO_PKG_VERSION").to_owned(),
    })?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let outcome = match serde_json::from_str::<CellSpec>(&line) {
        Err(e) => Err(format!("unreadable cell spec: {e}")),
        Ok(spec) if spec.protocol != protocol::PROTOCOL_VERSION => Err(format!(
            "the coordinator speaks protocol {} but this worker speaks {}: run the same odai \
             version on both sides",
            spec.protocol,
            protocol::PROTOCOL_VERSION
        )),
        Ok(spec) => worker::run(&spec),
    };
    match outcome {
        Ok(r) => say(&Event::Result(Box::new(r)))?,
        Err(message) => {
            say(&Event::Error { message })?;
            return Ok(exit::FAILURE);
        }
    }
    Ok(exit::SUCCESS)
}
