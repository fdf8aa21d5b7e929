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

/// A command's JSON document (docs/json.md): `schema_version` first (the body's own, else 1),
/// then `provenance`, then the body's fields, pretty-printed with a trailing newline.
pub fn document<T: serde::Serialize>(body: &T) -> anyhow::Result<String> {
    let v = crate::sysroot::to_contract_json(body).context("cannot serialize the output")?;
    let serde_json::Value::Object(fields) = v else {
        anyhow::bail!("internal error: a JSON document must be an object");
    };
    let mut doc = serde_json::Map::new();
    doc.insert(
        "schema_version".into(),
        fields
            .get("schema_version")
            .cloned()
            .unwrap_or_else(|| 1.into()),
    );
    doc.insert(
        "provenance".into(),
        serde_json::to_value(crate::provenance::Provenance::now())
            .context("cannot serialize the output")?,
    );
    doc.extend(fields.into_iter().filter(|(k, _)| k != "schema_version"));
    json_text(&serde_json::Value::Object(doc))
}

/// `value` as one compact JSON line (JSON Lines), unavailable readings in contract form.
pub fn json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let v = crate::sysroot::to_contract_json(value).context("cannot serialize the output")?;
    let mut s = serde_json::to_string(&v).context("cannot serialize the output")?;
    s.push('\n');
    Ok(s)
}
