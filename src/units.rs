//! Human formatting of SI quantities for text output (JSON keeps raw SI numbers).

/// Bytes in binary units: `512 B`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A duration such as `15m`, `10s`, `500ms`, `1.5h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 90s, 15m, 500ms, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} must be a positive duration"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_use_binary_prefixes() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
        assert_eq!(super::bytes(1536 << 20), "1.5 GiB");
    }
}
