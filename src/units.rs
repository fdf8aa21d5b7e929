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

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn now_unix_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `unix_s` as an RFC 3339 UTC time, `2026-11-24T10:27:35Z`.
pub fn utc_rfc3339(unix_s: u64) -> String {
    // Days to civil date: Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms",
    // days_from_civil's inverse (civil_from_days).
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A point in time for `--since`, as Unix seconds: a UTC date or time (`2026-11-01`,
/// `2026-11-01T09:30Z`, `2026-11-01T09:30:15Z`), or a span back from now (`7d`, `12h`, `90m`).
pub fn parse_since(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if let Some(days) = t.strip_suffix('d').and_then(|d| d.parse::<f64>().ok())
        && days.is_finite()
        && days >= 0.0
    {
        return Ok(now_unix_s() - days * 86_400.0);
    }
    if let Ok(d) = parse_duration(t) {
        return Ok(now_unix_s() - d.as_secs_f64());
    }
    let bad = || {
        format!(
            "{s:?} is not a time: give a UTC date (2026-11-01), a time (2026-11-01T09:30Z) or a \
             span back from now (7d, 12h)"
        )
    };
    let (date, time) = t.split_once('T').unwrap_or((t, ""));
    let ymd: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, d] = ymd[..] else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let hms: Vec<i64> = match time.trim_end_matches('Z') {
        "" => vec![],
        hms => hms
            .split(':')
            .map(|x| x.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    };
    if hms.len() > 3
        || hms.iter().any(|&x| !(0..60).contains(&x))
        || hms.first().is_some_and(|&h| h > 23)
    {
        return Err(bad());
    }
    let secs = hms
        .iter()
        .zip([3600, 60, 1])
        .map(|(v, k)| v * k)
        .sum::<i64>();
    Ok((days_from_civil(y, m, d) * 86_400 + secs) as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_reads_dates_times_and_spans() {
        assert_eq!(super::parse_since("1970-01-02"), Ok(86_400.0));
        assert_eq!(
            super::parse_since("2026-11-24T10:27:35Z"),
            Ok(1_795_516_055.0)
        );
        assert_eq!(super::parse_since("2000-02-29T00:00"), Ok(951_782_400.0));
        let week = super::parse_since("7d").unwrap();
        assert!((super::now_unix_s() - week - 7.0 * 86_400.0).abs() < 5.0);
        assert!(
            super::parse_since("yesterday")
                .unwrap_err()
                .contains("is not a time")
        );
        assert!(super::parse_since("2026-13-01").is_err());
        // The round trip with the RFC 3339 writer.
        assert_eq!(
            super::utc_rfc3339(super::parse_since("2026-12-05T16:39:31Z").unwrap() as u64),
            "2026-12-05T16:39:31Z"
        );
    }

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

/// `text` (from a device, a server, a worker's stderr) safe to print on a terminal or put in a
/// file someone will `cat`: control characters other than newline and tab are written as Rust
/// escapes (`\u{1b}`), so an escape sequence (a window title, a cleared screen) shows as text
/// and does nothing.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn escape_sequences_show_as_text() {
        assert_eq!(
            super::printable("a\u{1b}]0;pwned\u{7}b\u{1b}[2J\tc\nd\u{9b}"),
            "a\\u{1b}]0;pwned\\u{7}b\\u{1b}[2J\tc\nd\\u{9b}"
        );
        assert!(matches!(
            super::printable("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
