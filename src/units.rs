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

/// A duration the way `parse_duration` reads it back: `500ms`, `90s`, `15m`, `1.5h`.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    let trim = |v: f64, unit: &str| {
        let t = format!("{v:.1}");
        format!("{}{unit}", t.strip_suffix(".0").unwrap_or(&t))
    };
    if s < 1.0 {
        format!("{}ms", d.as_millis())
    } else if s < 120.0 {
        trim(s, "s")
    } else if s < 7200.0 {
        trim(s / 60.0, "m")
    } else {
        trim(s / 3600.0, "h")
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

/// A size such as `1.5GiB`, `800MB`, `512M` or plain bytes (binary multiples, as
/// `bench::load::parse_size` reads them).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    crate::bench::load::parse_size(s)
        .ok_or_else(|| format!("{s:?} is not a size (examples: 1.5GiB, 800MiB, 512M)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_use_binary_prefixes() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
        assert_eq!(super::bytes(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn durations_print_the_way_they_are_typed() {
        use std::time::Duration;
        for (d, text) in [
            (0.5, "500ms"),
            (90.0, "90s"),
            (1.5, "1.5s"),
            (900.0, "15m"),
            (9000.0, "2.5h"),
        ] {
            let d = Duration::from_secs_f64(d);
            assert_eq!(super::duration(d), text);
            assert_eq!(super::parse_duration(text).unwrap(), d);
        }
    }
}
