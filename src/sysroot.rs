//! Every read of `/proc`, `/sys`, `/dev` (and the few `/etc` and Android `/system` files the probe
//! needs) goes through a [`SysRoot`], so a captured device tree can stand in for the live one — the
//! idea of node_exporter's `--path.sysfs`. Reads return a [`Reading`]: a value, or `Unavailable`
//! with the reason (missing, permission denied, unparsable), never a made-up zero.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Largest file the probe will read. sysfs attributes are one page; `/proc/cpuinfo` on a 256-thread
/// server is a few hundred KiB. Anything larger in a captured tree is garbage, not data.
const MAX_READ_BYTES: u64 = 4 << 20;

/// A reading from the device: the value, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading<T> {
    Value(T),
    Unavailable(String),
}

impl<T> Reading<T> {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Reading::Unavailable(reason.into())
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Value(v) => Some(v),
            Reading::Unavailable(_) => None,
        }
    }

    pub fn into_value(self) -> Option<T> {
        match self {
            Reading::Value(v) => Some(v),
            Reading::Unavailable(_) => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Reading::Value(_) => None,
            Reading::Unavailable(r) => Some(r),
        }
    }

    pub fn is_value(&self) -> bool {
        matches!(self, Reading::Value(_))
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reading<U> {
        match self {
            Reading::Value(v) => Reading::Value(f(v)),
            Reading::Unavailable(r) => Reading::Unavailable(r),
        }
    }

    pub fn and_then<U>(self, f: impl FnOnce(T) -> Reading<U>) -> Reading<U> {
        match self {
            Reading::Value(v) => f(v),
            Reading::Unavailable(r) => Reading::Unavailable(r),
        }
    }

    /// This reading, or `other` when this one is unavailable.
    pub fn or_else(self, other: impl FnOnce() -> Reading<T>) -> Reading<T> {
        match self {
            Reading::Value(v) => Reading::Value(v),
            Reading::Unavailable(_) => other(),
        }
    }
}

impl<T> From<Option<T>> for Reading<Option<T>> {
    fn from(v: Option<T>) -> Self {
        Reading::Value(v)
    }
}

/// Marker key a `Reading::Unavailable` serializes to before [`to_contract_json`] turns it into
/// `null` plus a sibling `<key>_unavailable` reason.
const UNAVAILABLE_MARKER: &str = "$unavailable";

impl<T: Serialize> Serialize for Reading<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Reading::Value(v) => v.serialize(s),
            Reading::Unavailable(reason) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(UNAVAILABLE_MARKER, reason)?;
                m.end()
            }
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Reading<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<T> {
            Marker {
                #[serde(rename = "$unavailable")]
                reason: String,
            },
            Value(T),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Marker { reason } => Reading::Unavailable(reason),
            Repr::Value(v) => Reading::Value(v),
        })
    }
}

/// Serializes `value` in odai's JSON contract: an unavailable reading becomes `null` with a sibling
/// `<key>_unavailable` string holding the reason (documented in docs/probe-json.md).
pub fn to_contract_json<T: Serialize>(value: &T) -> serde_json::Result<serde_json::Value> {
    let mut v = serde_json::to_value(value)?;
    lower_markers(&mut v);
    Ok(v)
}

/// The inverse of [`to_contract_json`]: reads a contract document back into odai's types.
pub fn from_contract_json<T: for<'de> Deserialize<'de>>(
    mut v: serde_json::Value,
) -> serde_json::Result<T> {
    raise_markers(&mut v);
    serde_json::from_value(v)
}

fn marker_reason(v: &serde_json::Value) -> Option<String> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get(UNAVAILABLE_MARKER)?.as_str().map(str::to_owned)
}

fn lower_markers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let mut out = serde_json::Map::with_capacity(map.len());
            for k in keys {
                let mut child = map.remove(&k).unwrap_or(Value::Null);
                if let Some(reason) = marker_reason(&child) {
                    out.insert(k.clone(), Value::Null);
                    out.insert(format!("{k}_unavailable"), Value::String(reason));
                } else {
                    lower_markers(&mut child);
                    out.insert(k, child);
                }
            }
            *map = out;
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Some(reason) = marker_reason(item) {
                    // An array element has no sibling key; keep the reason in an object.
                    *item = serde_json::json!({ "unavailable": reason });
                } else {
                    lower_markers(item);
                }
            }
        }
        _ => {}
    }
}

fn raise_markers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let reasons: Vec<(String, String)> = map
                .iter()
                .filter_map(|(k, val)| {
                    let base = k.strip_suffix("_unavailable")?;
                    let reason = val.as_str()?;
                    map.get(base)
                        .is_some_and(Value::is_null)
                        .then(|| (base.to_owned(), reason.to_owned()))
                })
                .collect();
            for (base, reason) in reasons {
                map.remove(&format!("{base}_unavailable"));
                map.insert(base, serde_json::json!({ UNAVAILABLE_MARKER: reason }));
            }
            for (_, child) in map.iter_mut() {
                if marker_reason(child).is_none() {
                    raise_markers(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(raise_markers),
        _ => {}
    }
}

impl<T: fmt::Display> fmt::Display for Reading<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Value(v) => v.fmt(f),
            Reading::Unavailable(r) => write!(f, "unavailable: {r}"),
        }
    }
}

/// The reason text for an I/O error on `logical`, in the words the JSON contract uses.
pub fn io_reason(logical: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!("missing: {logical}"),
        io::ErrorKind::PermissionDenied => format!("permission denied: {logical}"),
        // sysfs attributes whose sensor is off or absent say so with ENODATA, EINVAL, EIO.
        _ if crate::platform::is_device_unanswering(e) => {
            format!("not readable now: {logical} ({e})")
        }
        _ => format!("unreadable: {logical} ({e})"),
    }
}

/// Short, printable form of a raw value for an "unparsable" reason: garbage must not flood output.
pub fn excerpt(raw: &str) -> String {
    let mut s: String = raw.chars().take(32).collect();
    if raw.chars().count() > 32 {
        s.push('…');
    }
    format!("{s:?}")
}

/// The directory every device read is relative to: `/` for the live device, or a captured tree.
#[derive(Clone, Debug)]
pub struct SysRoot {
    base: PathBuf,
    live: bool,
}

impl SysRoot {
    /// The device odai runs on.
    pub fn live() -> Self {
        SysRoot {
            base: PathBuf::from("/"),
            live: true,
        }
    }

    /// A captured device tree at `dir` (`--root` / `ODAI_ROOT`). `/` itself counts as live.
    pub fn at(dir: &Path) -> Result<Self, Error> {
        let meta = fs::metadata(dir).map_err(|e| Error::Root {
            path: dir.to_owned(),
            problem: match e.kind() {
                io::ErrorKind::NotFound => "no such directory".to_owned(),
                _ => e.to_string(),
            },
        })?;
        if !meta.is_dir() {
            return Err(Error::Root {
                path: dir.to_owned(),
                problem: "not a directory".to_owned(),
            });
        }
        let live = fs::canonicalize(dir).is_ok_and(|p| p == Path::new("/"));
        Ok(SysRoot {
            base: dir.to_owned(),
            live,
        })
    }

    /// True when reads go to the running device (root `/`), so live-only sources such as GPU
    /// drivers, `getprop` and `uname(2)` describe the same device as the files do.
    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Host path for a logical absolute path such as `/sys/class/thermal`.
    pub fn path(&self, logical: &str) -> PathBuf {
        self.base.join(logical.trim_start_matches('/'))
    }

    pub fn exists(&self, logical: &str) -> bool {
        fs::symlink_metadata(self.path(logical)).is_ok()
    }

    pub fn is_dir(&self, logical: &str) -> bool {
        fs::metadata(self.path(logical)).is_ok_and(|m| m.is_dir())
    }

    /// The file's text as read. Only regular files are read (a FIFO or device node in a captured
    /// tree would block), and at most [`MAX_READ_BYTES`].
    pub fn read_raw(&self, logical: &str) -> Reading<String> {
        let host = self.path(logical);
        let meta = match fs::metadata(&host) {
            Ok(m) => m,
            Err(e) => return Reading::Unavailable(io_reason(logical, &e)),
        };
        if meta.is_dir() {
            return Reading::unavailable(format!("unparsable: {logical} is a directory"));
        }
        if !meta.is_file() {
            return Reading::unavailable(format!("unreadable: {logical} is not a regular file"));
        }
        let mut buf = Vec::new();
        let read =
            fs::File::open(&host).and_then(|f| f.take(MAX_READ_BYTES + 1).read_to_end(&mut buf));
        if let Err(e) = read {
            return Reading::Unavailable(io_reason(logical, &e));
        }
        if buf.len() as u64 > MAX_READ_BYTES {
            return Reading::unavailable(format!(
                "unparsable: {logical} is larger than {} MiB",
                MAX_READ_BYTES >> 20
            ));
        }
        match String::from_utf8(buf) {
            Ok(s) => Reading::Value(s),
            Err(_) => Reading::unavailable(format!("unparsable: {logical} is not UTF-8 text")),
        }
    }

    /// The file's text with surrounding whitespace and device-tree NUL terminators removed; an
    /// empty file is unavailable (a truncated capture, or an attribute the driver left blank).
    pub fn read_str(&self, logical: &str) -> Reading<String> {
        self.read_raw(logical).and_then(|s| {
            let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
            if t.is_empty() {
                Reading::unavailable(format!("unparsable: {logical} is empty"))
            } else {
                Reading::Value(t.to_owned())
            }
        })
    }

    /// The file parsed as one value (an integer, a float).
    pub fn read_parse<T: FromStr>(&self, logical: &str) -> Reading<T> {
        self.read_str(logical).and_then(|s| match s.parse::<T>() {
            Ok(v) => Reading::Value(v),
            Err(_) => Reading::unavailable(format!(
                "unparsable: {logical} holds {}, not a number",
                excerpt(&s)
            )),
        })
    }

    /// The last path component of the symlink at `logical` (e.g. a device's `driver` link).
    pub fn read_link_name(&self, logical: &str) -> Reading<String> {
        match fs::read_link(self.path(logical)) {
            Ok(target) => match target.file_name().and_then(|n| n.to_str()) {
                Some(name) => Reading::Value(name.to_owned()),
                None => Reading::unavailable(format!("unparsable: {logical} link has no name")),
            },
            Err(e) if crate::platform::is_not_a_link(&e) => {
                Reading::unavailable(format!("unparsable: {logical} is not a symlink"))
            }
            Err(e) => Reading::Unavailable(io_reason(logical, &e)),
        }
    }

    /// Entry names in a directory, in natural order (`thermal_zone2` before `thermal_zone10`).
    pub fn list(&self, logical: &str) -> Reading<Vec<String>> {
        match fs::read_dir(self.path(logical)) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect();
                names.sort_by(|a, b| natural_cmp(a, b));
                Reading::Value(names)
            }
            Err(e) => Reading::Unavailable(io_reason(logical, &e)),
        }
    }

    /// Entry names starting with `prefix`; a missing directory is an empty list (nothing there).
    pub fn list_prefixed(&self, logical: &str, prefix: &str) -> Vec<String> {
        self.list(logical)
            .into_value()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect()
    }
}

/// Compares names so that embedded numbers sort by value: `cpu2` < `cpu10`,
/// `intel-rapl:0:1` < `intel-rapl:1`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, nx), (true, ny)) => nx
                .trim_start_matches('0')
                .len()
                .cmp(&ny.trim_start_matches('0').len())
                .then(nx.trim_start_matches('0').cmp(ny.trim_start_matches('0'))),
            ((_, sx), (_, sy)) => sx.cmp(sy),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then(a.cmp(b))
}

/// Parses a kernel CPU list such as `0-3,8,10-11` (Documentation/admin-guide/cputopology.rst).
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Doc {
        total_bytes: Reading<u64>,
        limit: Reading<Option<u64>>,
        nested: Inner,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        temp_c: Reading<f64>,
    }

    #[test]
    fn unavailable_becomes_null_with_sibling_reason_and_round_trips() {
        let doc = Doc {
            total_bytes: Reading::Value(42),
            limit: Reading::Value(None),
            nested: Inner {
                temp_c: Reading::unavailable("missing: /sys/class/thermal"),
            },
        };
        let v = to_contract_json(&doc).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "total_bytes": 42,
                "limit": null,
                "nested": {"temp_c": null, "temp_c_unavailable": "missing: /sys/class/thermal"}
            })
        );
        let back: Doc = from_contract_json(v).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn cpu_lists_parse_ranges_and_reject_garbage() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn natural_order_sorts_numbers_by_value() {
        let mut v = vec!["cpu10", "cpu2", "cpu1", "cpufreq"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["cpu1", "cpu2", "cpu10", "cpufreq"]);
        let mut r = vec![
            "intel-rapl:1",
            "intel-rapl:0:1",
            "intel-rapl:0",
            "intel-rapl:0:0",
        ];
        r.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            r,
            [
                "intel-rapl:0",
                "intel-rapl:0:0",
                "intel-rapl:0:1",
                "intel-rapl:1"
            ]
        );
    }

    #[test]
    fn io_errors_map_to_contract_reasons() {
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(io_reason("/x", &e), "permission denied: /x");
        let e = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(io_reason("/x", &e), "missing: /x");
        #[cfg(unix)]
        {
            let e = io::Error::from_raw_os_error(libc::EIO);
            assert!(io_reason("/x", &e).starts_with("not readable now: /x"));
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let e = io::Error::from_raw_os_error(libc::ENODATA);
            assert!(io_reason("/x", &e).starts_with("not readable now: /x"));
        }
    }

    // A FIFO is made with mkfifo(3).
    #[cfg(unix)]
    #[test]
    fn reads_reject_fifos_empty_files_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::at(dir.path()).unwrap();
        fs::write(dir.path().join("empty"), "").unwrap();
        fs::write(dir.path().join("junk"), "12abc\n").unwrap();
        fs::write(dir.path().join("bin"), [0xff, 0xfe, 0x00]).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join("fifo").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        assert_eq!(
            root.read_str("/empty"),
            Reading::unavailable("unparsable: /empty is empty")
        );
        assert_eq!(
            root.read_parse::<u64>("/junk"),
            Reading::unavailable("unparsable: /junk holds \"12abc\", not a number")
        );
        assert_eq!(
            root.read_str("/bin"),
            Reading::unavailable("unparsable: /bin is not UTF-8 text")
        );
        assert_eq!(
            root.read_str("/fifo"),
            Reading::unavailable("unreadable: /fifo is not a regular file")
        );
        assert_eq!(
            root.read_str("/nope"),
            Reading::unavailable("missing: /nope")
        );
    }
}
