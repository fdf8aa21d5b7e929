//! Where an output came from: the host that wrote it, when (UTC), and which odai, built from
//! which commit for which target. Every JSON document a command prints carries it
//! (docs/json.md), and so do the report's files and bench's exports.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub host: String,
    pub generated_utc: String,
    pub odai_version: String,
    pub git_commit: String,
    pub target: String,
}

impl Provenance {
    /// This machine, now.
    pub fn now() -> Provenance {
        Provenance {
            // The coordinator's own name (uname(2) / GetComputerName), not a probed device's.
            host: sysinfo::System::host_name().map_or_else(|_| "unknown".into(), |h| h.to_string()),
            generated_utc: crate::units::utc_rfc3339(crate::units::now_unix_s() as u64),
            odai_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: crate::GIT_COMMIT.into(),
            target: env!("ODAI_TARGET").into(),
        }
    }

    /// One line for people: `generated on HOST at TIME by odai VERSION (commit 0123456789ab)`.
    pub fn line(&self) -> String {
        format!(
            "generated on {} at {} by odai {} (commit {})",
            self.host,
            self.generated_utc,
            self.odai_version,
            &self.git_commit[..self.git_commit.len().min(12)]
        )
    }
}
