//! `odai db import`: results directories into the SQLite results database (`crate::db`), and
//! what every `--db` flag says in a build without it.

use crate::cli::DbImportArgs;
use crate::error::Error;

/// The error of a `--db` (or `-o sql`) in an odai built without the `db` feature.
pub fn not_built(flag: &str) -> anyhow::Error {
    Error::Invalid {
        flag: flag.into(),
        problem: "this odai was built without the results database (feature `db`, on by \
                  default): build it with `cargo install --locked --path .`"
            .into(),
    }
    .into()
}

#[cfg(feature = "db")]
pub fn import(a: &DbImportArgs) -> anyhow::Result<i32> {
    use crate::cli::Format;
    let mut db = crate::db::Db::open(&a.db)?;
    let mut done = Vec::new();
    for dir in &a.results {
        let n = db.import_dir(dir)?;
        for w in &n.warnings {
            anstream::eprintln!("odai: warning: {w}");
        }
        done.push(n);
    }
    match a.format {
        Format::Json => super::print(&super::document(&serde_json::json!({
            "db": a.db.display().to_string(),
            "db_schema_version": crate::db::SCHEMA_VERSION,
            "imported": done,
        }))?)?,
        Format::Text => {
            let mut s = String::new();
            for (dir, n) in a.results.iter().zip(&done) {
                s.push_str(&format!(
                    "{}: run {}: {} cells, {} retired failures, {} quality records, {} probes\n",
                    dir.display(),
                    n.run_id,
                    n.cells,
                    n.failures,
                    n.quality,
                    n.probes
                ));
            }
            s.push_str(&format!("into {}\n", a.db.display()));
            super::print(&s)?;
        }
    }
    Ok(crate::exit::SUCCESS)
}

#[cfg(not(feature = "db"))]
pub fn import(_: &DbImportArgs) -> anyhow::Result<i32> {
    Err(not_built("odai db"))
}
