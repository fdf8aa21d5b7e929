//! Records the target triple this odai was built for (`odai farm deploy` compares it with each
//! device's, and `odai --version` reports it): cargo gives build scripts `TARGET`, not the crate.
//! And the git commit it was built from, for the provenance of every export (`unknown` outside a
//! checkout, e.g. a crates.io install).
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=ODAI_TARGET={target}");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    // The cargo features this odai was built with (`odai --version`): cargo sets
    // CARGO_FEATURE_<NAME> for each, upper-cased with `-` as `_`.
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_lowercase().replace('_', "-"))
        })
        .filter(|f| f != "default")
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(", ")
    };
    println!("cargo:rustc-env=ODAI_FEATURES={features}");
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ODAI_GIT_COMMIT={commit}");
    // A new commit moves HEAD's branch ref (or HEAD itself when detached): build again then.
    // Only files that exist: cargo runs a build script every time for a missing one.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let head_ref = git(&["symbolic-ref", "-q", "HEAD"]);
        for file in ["HEAD".to_owned(), "packed-refs".to_owned()]
            .into_iter()
            .chain(head_ref)
        {
            let path = format!("{dir}/{file}");
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
