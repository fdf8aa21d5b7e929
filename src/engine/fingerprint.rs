//! A model file's sha256, which every result row records. Hashing a multi-GiB model takes
//! seconds, so hashes are cached by path, size and modification time.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of bytes in memory, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    hex(h)
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    super::regular_file(path).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(h))
}

/// sha256 of `path`, from `cache_file` when path, size and mtime match; computed and appended
/// otherwise. A cache that cannot be read or written only costs the hashing time.
pub fn sha256_cached(path: &Path, cache_file: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot stat", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let key = format!("{}\t{}\t{}\t", abs.display(), meta.len(), mtime);
    if let Ok(text) = std::fs::read_to_string(cache_file)
        && let Some(sha) = text
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix(&key))
            .find(|h| is_sha256(h))
    {
        return Ok(sha.to_owned());
    }
    let sha = sha256_file(path)?;
    if let Some(dir) = cache_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cache_file)
    {
        use std::io::Write;
        // One write(2) per line: O_APPEND keeps a single small write whole when processes hash
        // side by side; writeln! would split it into pieces that interleave.
        let _ = f.write_all(format!("{key}{sha}\n").as_bytes());
    }
    Ok(sha)
}

/// A cached value is a hash only if it looks like one: a line torn by another writer is not.
fn is_sha256(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_torn_cache_line_is_not_a_hash() {
        // Found in CI-style runs: two processes appended their lines to the same cache at once,
        // and the interleaved line was returned as a 227-character "sha256".
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.gguf");
        let cache = dir.path().join("sha256.tsv");
        std::fs::write(&f, "abc").unwrap();
        let h = sha256_cached(&f, &cache).unwrap();
        let line = std::fs::read_to_string(&cache).unwrap();
        let key = line.trim_end().strip_suffix(&h).unwrap().to_owned();
        std::fs::write(&cache, format!("{key}{key}{h}{h}\n")).unwrap();
        assert_eq!(sha256_cached(&f, &cache).unwrap(), h);
        assert_eq!(h.len(), 64);
    }

    #[test]
    fn cached_hash_is_reused_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.gguf");
        let cache = dir.path().join("cache/sha256.tsv");
        std::fs::write(&f, "abc").unwrap();
        let h = sha256_cached(&f, &cache).unwrap();
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), 1);
        assert_eq!(sha256_cached(&f, &cache).unwrap(), h);
        assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), 1);
        std::fs::write(&f, "abcd").unwrap();
        assert_ne!(sha256_cached(&f, &cache).unwrap(), h);
    }
}
