//! Quoting for arguments that cross a remote shell (ssh runs a command line through the remote
//! user's shell, `adb shell` through the device's): in one place, so a model path with spaces,
//! quotes or `$(…)` arrives intact and executes nothing.

/// One argument, quoted for a POSIX shell: single quotes around it, and each `'` inside written
/// as `'\''` (close, escaped quote, reopen). Nothing inside single quotes is special to sh.
pub fn sh_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return arg.to_owned();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// A command line for a remote shell: `VAR=value … program arg …`, every part quoted.
pub fn command_line<'a>(
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
    argv: impl IntoIterator<Item = &'a str>,
) -> String {
    env.into_iter()
        .map(|(k, v)| format!("{k}={}", sh_quote(v)))
        .chain(argv.into_iter().map(sh_quote))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "plain",
        "with space.gguf",
        "it's.gguf",
        "\"double\"",
        "$(touch PWNED)",
        "`touch PWNED`",
        "a; touch PWNED",
        "x && touch PWNED || true",
        "new\nline",
        "tab\there",
        "glob*?[x]",
        "",
        "'",
        "\\",
        "ünïcödé ✓",
    ];

    /// Each argument survives a real `sh -c` round trip byte for byte, and runs nothing.
    #[test]
    fn hostile_arguments_arrive_intact_through_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        for arg in HOSTILE {
            let line = format!("printf '%s' {}", sh_quote(arg));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), *arg, "{line}");
        }
        assert!(
            !dir.path().join("PWNED").exists(),
            "a quoted argument ran a command"
        );
    }

    #[test]
    fn environment_values_are_quoted_too() {
        let dir = tempfile::tempdir().unwrap();
        let line = command_line(
            [("ODAI_ROOT", "/tmp/a b/$(touch PWNED)")],
            ["sh", "-c", "printf '%s' \"$ODAI_ROOT\""],
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "/tmp/a b/$(touch PWNED)"
        );
        assert!(!dir.path().join("PWNED").exists());
    }
}
