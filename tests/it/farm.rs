//! `odai matrix run --farm` and `odai farm` against real components: OpenSSH servers on
//! 127.0.0.1 (each SSH device probes as a different fixture tree through `ODAI_ROOT`), the local
//! device, faults (an sshd stopped mid-run, Ctrl-C), hostile names, and ADB through a stand-in.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;
use crate::common::sshd;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cache, fixture, odai, records};
use serde_json::Value;
use sshd::{Sshd, toml_str};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("odai")
}

/// Two cells per device of the toy model: the harness, not a model, is under test.
const TOY: &str = "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1, 2]\n\
                   prompt_tokens = [16]\ngen_tokens = [8]\nreps = 1\n";

fn local_device(name: &str, env: &[(&str, &str)]) -> String {
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k} = {}", toml_str(v)))
        .collect();
    format!(
        "[[device]]\nname = \"{name}\"\ntransport = \"local\"\ntags = [\"here\"]\nenv = {{ {} }}\n\n",
        env.join(", ")
    )
}

fn cache_env() -> String {
    cache().display().to_string()
}

fn run_matrix(matrix: &Path, farm: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    odai()
        .env("ODAI_CACHE_DIR", cache())
        .timeout(Duration::from_secs(300))
        .args(["matrix", "run"])
        .arg(matrix)
        .arg("--farm")
        .arg(farm)
        .arg("--out")
        .arg(out)
        .args(["--retries", "2", "--retry-backoff", "100ms"])
        .args(extra)
        .output()
        .unwrap()
}

/// `run_matrix` started in the background, in its own process group like a shell job (so a
/// terminal's Ctrl-C can be sent to it and its workers together).
fn spawn_matrix(matrix: &Path, farm: &Path, out: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new(bin())
        .process_group(0)
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(matrix)
        .arg("--farm")
        .arg(farm)
        .arg("--out")
        .arg(out)
        .args(["--retries", "2", "--retry-backoff", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_matrix_runs_on_two_ssh_devices_and_this_one() {
    let (a, b) = (Sshd::start(), Sshd::start());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_env();
    let pi = fixture("raspberry-pi-5").display().to_string();
    let phone = fixture("android-phone").display().to_string();
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        a.device(
            "pi",
            &bin(),
            &[("ODAI_ROOT", &pi), ("ODAI_CACHE_DIR", &cache)],
        ) + &b.device(
            "phone",
            &bin(),
            &[("ODAI_ROOT", &phone), ("ODAI_CACHE_DIR", &cache)],
        ) + &local_device("here", &[]),
    )
    .unwrap();
    let matrix = dir.path().join("toy.toml");
    fs::write(&matrix, TOY).unwrap();

    // farm check: every device reached, its odai version, and its class from its own tree.
    let check = odai()
        .args(["farm", "check", "--format", "json", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let rows: Value = serde_json::from_slice::<Value>(&check.stdout).unwrap()["devices"].clone();
    let classes: Vec<(&str, &str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["odai_version"], env!("CARGO_PKG_VERSION"));
            (
                r["device"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["class"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(classes[0], ("pi", "ok", "single-board-computer"));
    assert_eq!(classes[1], ("phone", "ok", "midrange-phone"));
    assert_eq!(classes[2].1, "ok");
    let text = odai()
        .args(["farm", "check", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.starts_with("DEVICE  TRANSPORT"),
        "a table with a header: {text}"
    );
    assert!(text.contains(&format!("@127.0.0.1:{}", a.port)), "{text}");

    // The plan covers each device, probed through its transport.
    let plan = odai()
        .args(["matrix", "plan", "--format", "json"])
        .arg(&matrix)
        .arg("--farm")
        .arg(&farm)
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let planned: Vec<&str> = plan["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["pi", "phone", "here"]);

    let out = dir.path().join("out");
    let run = run_matrix(&matrix, &farm, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let recs = records(&out);
    assert_eq!(recs.len(), 6, "two cells on each of three devices");
    for r in &recs {
        assert_eq!(r["status"], "ok", "{r}");
        let tps = r["report"]["summary"]["decode_tps"]["mean"]
            .as_f64()
            .unwrap();
        assert!(tps > 0.0);
        assert_eq!(r["report"]["provenance"]["synthetic"], "toy:q8_0");
    }
    for (device, host) in [("pi", "pi5"), ("phone", "localhost")] {
        let mine: Vec<&Value> = recs.iter().filter(|r| r["device"] == device).collect();
        assert_eq!(mine.len(), 2);
        // The cell ran against the device's own tree: its provenance says so.
        assert_eq!(
            mine[0]["report"]["provenance"]["device"]["hostname"], host,
            "{device}"
        );
        let probe: Value =
            serde_json::from_slice(&fs::read(out.join(format!("probe-{device}.json"))).unwrap())
                .unwrap();
        assert_eq!(probe["device"]["hostname"], host);
    }
    assert!(out.join("probe-here.json").is_file());
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["devices"],
        serde_json::json!(["pi", "phone", "here"])
    );
    assert_eq!(manifest["farm_file"], farm.display().to_string());
    assert!(manifest["finished_unix_s"].is_number());
    // Not a terminal: plain progress, one line per finished cell.
    let progress = stderr(&run);
    assert_eq!(
        progress
            .lines()
            .filter(|l| l.contains(": ok, decode"))
            .count(),
        6,
        "{progress}"
    );
    assert!(progress.contains("[pi 2/2] "), "{progress}");
}

#[test]
fn an_sshd_stopped_mid_run_fails_that_device_and_resume_completes_it() {
    let mut a = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_env();
    let pi = fixture("raspberry-pi-5").display().to_string();
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        a.device(
            "pi",
            &bin(),
            &[("ODAI_ROOT", &pi), ("ODAI_CACHE_DIR", &cache)],
        ) + &local_device("here", &[]),
    )
    .unwrap();
    // Each cell decodes for a second (a sustained run), so there is time to stop sshd between
    // the first cell and the last.
    let matrix = dir.path().join("m.toml");
    fs::write(
        &matrix,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1, 2]\n\
         prompt_tokens = [8, 16, 24]\ngen_tokens = [8]\nreps = 1\nwarmup = 0\nsustained = [\"1s\"]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let coordinator = spawn_matrix(&matrix, &farm, &out);
    let started = Instant::now();
    while !records(&out).iter().any(|r| r["device"] == "pi") {
        assert!(started.elapsed() < Duration::from_secs(120), "no pi cell");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.stop();
    let run = coordinator.wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let recs = records(&out);
    let (pi, here): (Vec<&Value>, Vec<&Value>) = recs.iter().partition(|r| r["device"] == "pi");
    assert_eq!(here.len(), 6);
    assert!(
        here.iter().all(|r| r["status"] == "ok"),
        "the local device carries on"
    );
    assert_eq!(pi.len(), 6, "every pi cell recorded: ok, or failed");
    let failed: Vec<&&Value> = pi.iter().filter(|r| r["status"] == "failed").collect();
    assert!(!failed.is_empty());
    let why = failed[0]["reason"].as_str().unwrap();
    assert!(
        why.starts_with(
            "device offline after 3 attempts: ssh ended (exit 255) before odai answered"
        ),
        "{why}"
    );
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("device offline after 3 attempts"), "{text}");
    let progress = stderr(&run);
    assert!(
        progress.contains("pi: attempt 1 failed") && progress.contains("retrying in 100ms"),
        "{progress}"
    );

    // Back online: resume runs exactly the failed cells; no cell is recorded twice.
    a.restart();
    let resumed = run_matrix(&matrix, &farm, &out, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let recs = records(&out);
    assert_eq!(recs.len(), 12);
    assert!(recs.iter().all(|r| r["status"] == "ok"));
    let mut keys: Vec<String> = recs
        .iter()
        .map(|r| format!("{}/{}", r["device"], r["cell_id"]))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 12, "a cell was recorded twice");
    // What failed is kept, apart from the results.
    let history = fs::read_to_string(out.join("failures.jsonl")).unwrap();
    assert_eq!(history.lines().count(), failed.len());
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let farm = dir.path().join("farm.toml");
    fs::write(&farm, local_device("one", &[]) + &local_device("two", &[])).unwrap();
    let matrix = dir.path().join("m.toml");
    fs::write(
        &matrix,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1]\n\
         prompt_tokens = [8, 16, 24, 32]\ngen_tokens = [8]\nreps = 1\nwarmup = 0\nsustained = [\"1s\"]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let child = spawn_matrix(&matrix, &farm, &out);
    let started = Instant::now();
    while records(&out).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(120), "no cell");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's process group, as a terminal's Ctrl-C does. (Found in
    // CI: a worker that died of the group's SIGINT before the coordinator saw its own was
    // recorded as a failed cell.)
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let run = child.wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(130), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains("interrupted: finished cells are in"),
        "{text}"
    );
    let before = records(&out);
    assert!(before.len() < 8, "stopped before the end");
    assert!(
        before.iter().all(|r| r["status"] == "ok"),
        "an interrupted cell is not recorded as failed"
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["interrupted"], true);
    // No worker left running after the coordinator stopped.
    let resumed = run_matrix(&matrix, &farm, &out, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(records(&out).len(), 8);
}

#[test]
fn hostile_names_reach_the_worker_intact_and_run_nothing() {
    let a = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    // A file name cannot hold '/', so the commands touch a relative name: anything they ran
    // would leave it in the remote login directory or in a working directory here.
    let pwned = "odai-pwned-by-a-name";
    let evil = format!("it's a \"model\" $(touch {pwned}) `touch {pwned}`; touch {pwned}");
    // A model file and a device tree whose names would run commands if any shell read them.
    let model_dir = dir.path().join(&evil);
    fs::create_dir_all(&model_dir).unwrap();
    let model = model_dir.join(format!("{evil}.gguf"));
    let made = odai()
        .args([
            "model", "synth", "--preset", "toy", "--quant", "q8_0", "--output",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let tree = dir.path().join(format!("tree {evil}"));
    common::copy_tree(&fixture("jetson-orin"), &tree);
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        a.device(
            "orin",
            &bin(),
            &[
                ("ODAI_ROOT", &tree.display().to_string()),
                ("ODAI_CACHE_DIR", &cache_env()),
            ],
        ),
    )
    .unwrap();
    let matrix = dir.path().join("m.toml");
    fs::write(
        &matrix,
        format!(
            "[matrix]\nmodels = [{}]\nthreads = [1]\nprompt_tokens = [8]\ngen_tokens = [4]\nreps = 1\n",
            toml_str(&model.display().to_string())
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = run_matrix(&matrix, &farm, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "ok", "{}", recs[0]);
    // The path arrived byte for byte (the worker opened it), and so did the tree: the cell ran
    // against the Orin's tree.
    assert_eq!(
        recs[0]["report"]["provenance"]["model_file"],
        format!("{evil}.gguf")
    );
    assert_eq!(
        recs[0]["report"]["provenance"]["device"]["hostname"],
        "orin-nano"
    );
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()));
    for place in [home.as_path(), dir.path(), Path::new(".")] {
        assert!(
            !place.join(pwned).exists(),
            "a hostile name ran a command in {}",
            place.display()
        );
    }
}

/// There is no Android device here. This `adb` stands in for one: it accepts the commands odai
/// gives adb (`-s SERIAL shell LINE`, `-s SERIAL push SRC DST`) and carries them out on this
/// machine, so the ADB transport's command lines and the worker protocol over them are
/// exercised end to end. It is not a phone, and says so on stderr when asked for anything else.
const ADB_STAND_IN: &str = r#"#!/bin/sh
[ "$1" = "-s" ] || { echo "adb stand-in: expected -s SERIAL, got $*" >&2; exit 1; }
[ "$2" = "emulator-5554" ] || { echo "error: device '$2' not found" >&2; exit 1; }
shift 2
case "$1" in
  shell) shift; [ $# -eq 1 ] || { echo "adb stand-in: odai must pass one shell line" >&2; exit 1; }
         exec sh -c "$1" ;;
  push)  cp -- "$2" "$3" ;;
  *)     echo "adb stand-in: not a phone; cannot $1" >&2; exit 1 ;;
esac
"#;

#[test]
fn adb_devices_run_through_adb_shell_with_a_stand_in() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let adb = dir.path().join("adb");
    fs::write(&adb, ADB_STAND_IN).unwrap();
    fs::set_permissions(&adb, fs::Permissions::from_mode(0o755)).unwrap();
    let remote = dir.path().join("data local tmp");
    fs::create_dir_all(&remote).unwrap();
    let odai_on_phone = remote.join("odai");
    let phone = fixture("android-phone").display().to_string();
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        format!(
            "[[device]]\nname = \"pixel\"\ntransport = \"adb\"\nserial = \"emulator-5554\"\n\
             odai = {}\nenv = {{ ODAI_ROOT = {}, ODAI_CACHE_DIR = {} }}\n\n\
             [[device]]\nname = \"gone\"\ntransport = \"adb\"\nserial = \"R58N123\"\n",
            toml_str(&odai_on_phone.display().to_string()),
            toml_str(&phone),
            toml_str(&cache_env()),
        ),
    )
    .unwrap();
    // Deploy: `uname -sm` says Linux x86_64, so the device wants x86_64-linux-android, or the
    // static musl build.
    let deploy = odai()
        .env("ODAI_ADB", &adb)
        .args(["farm", "deploy", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    assert_eq!(deploy.status.code(), Some(1));
    let table = String::from_utf8_lossy(&deploy.stdout);
    assert!(
        table.contains(
            "no odai binary for x86_64-linux-android or x86_64-unknown-linux-musl: build one \
             (scripts/build-device-binaries.sh) and pass --binaries DIR or --binary \
             x86_64-unknown-linux-musl=PATH"
        ),
        "{table}"
    );
    let deploy = odai()
        .env("ODAI_ADB", &adb)
        .args(["farm", "deploy", "--format", "json", "--farm"])
        .arg(&farm)
        .arg("--binary")
        .arg(format!("x86_64-linux-android={}", bin().display()))
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice::<Value>(&deploy.stdout).unwrap()["devices"].clone();
    assert_eq!(rows[0]["status"], "deployed", "{rows}");
    assert_eq!(rows[0]["triple"], "x86_64-linux-android");
    assert!(odai_on_phone.is_file());
    assert!(
        rows[1]["status"]
            .as_str()
            .unwrap()
            .ends_with("error: device 'R58N123' not found"),
        "{rows}"
    );

    let matrix = dir.path().join("toy.toml");
    fs::write(&matrix, TOY).unwrap();
    let out = dir.path().join("out");
    let run = odai()
        .env("ODAI_ADB", &adb)
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(&matrix)
        .arg("--farm")
        .arg(&farm)
        .arg("--out")
        .arg(&out)
        .args(["--retries", "1", "--retry-backoff", "50ms"])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "the missing device fails its cells"
    );
    let recs = records(&out);
    let pixel: Vec<&Value> = recs.iter().filter(|r| r["device"] == "pixel").collect();
    assert_eq!(pixel.len(), 2);
    assert!(pixel.iter().all(|r| r["status"] == "ok"), "{recs:?}");
    assert_eq!(
        pixel[0]["report"]["provenance"]["device"]["class"],
        "midrange-phone"
    );
    let gone: Vec<&Value> = recs.iter().filter(|r| r["device"] == "gone").collect();
    assert_eq!(gone.len(), 2);
    assert_eq!(
        gone[0]["reason"],
        format!(
            "device offline after 2 attempts: {} ended (exit 1) before odai answered: error: device 'R58N123' not found",
            adb.display()
        )
    );
}

/// An `adb` whose link drops once: the first cell request gets the worker's hello and then the
/// connection ends with exit 0 and nothing more, as adb's shell-protocol client ends when the
/// stream closes before the exit packet. Every other request runs as the stand-in above does.
const ADB_DROPS_ONCE: &str = r#"#!/bin/sh
shift 2
case "$1" in
  push) cp -- "$2" "$3"; exit ;;
  shell) shift ;;
esac
case "$1" in *worker*) ;; *) exec sh -c "$1" ;; esac
read -r line
case "$line" in
  *'"request":"probe"'*) ;;
  *) if [ ! -e "$ADB_DROPPED" ]; then
       : >"$ADB_DROPPED"
       echo '{"event":"hello","protocol":@PROTOCOL@,"odai_version":"0.1.0"}'
       exit 0
     fi ;;
esac
{ printf '%s\n' "$line"; cat; } | sh -c "$1"
"#;

#[test]
fn regression_an_adb_link_lost_after_hello_is_retried_as_a_transport_failure() {
    // Found in review: a link that dropped after the worker's hello was recorded as a worker
    // failure, so the cell failed instead of being retried.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let adb = dir.path().join("adb");
    fs::write(
        &adb,
        ADB_DROPS_ONCE.replace("@PROTOCOL@", &odai::protocol::PROTOCOL_VERSION.to_string()),
    )
    .unwrap();
    fs::set_permissions(&adb, fs::Permissions::from_mode(0o755)).unwrap();
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        format!(
            "[[device]]\nname = \"pixel\"\ntransport = \"adb\"\nserial = \"emulator-5554\"\n\
             odai = {}\nenv = {{ ODAI_CACHE_DIR = {} }}\n",
            toml_str(&bin().display().to_string()),
            toml_str(&cache_env()),
        ),
    )
    .unwrap();
    let matrix = dir.path().join("toy.toml");
    fs::write(&matrix, TOY).unwrap();
    let out = dir.path().join("out");
    let dropped = dir.path().join("dropped");
    let run = odai()
        .env("ODAI_ADB", &adb)
        .env("ADB_DROPPED", &dropped)
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(&matrix)
        .arg("--farm")
        .arg(&farm)
        .arg("--out")
        .arg(&out)
        .args(["--retries", "2", "--retry-backoff", "50ms"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        dropped.exists(),
        "the link never dropped: the test tested nothing"
    );
    assert!(
        stderr(&run).contains(&format!(
            "pixel: attempt 1 failed (the connection was lost ({} exit 0)); retrying in",
            adb.display()
        )),
        "{}",
        stderr(&run)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r["status"] == "ok"), "{recs:?}");
}

/// A stand-in for odai on a device: probes are answered by the real odai; a cell request runs
/// `cell` (shell) after the worker's hello.
fn stand_in_odai(dir: &Path, cell: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("odai-stand-in");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nread line\ncase \"$line\" in *'\"request\":\"probe\"'*)\n  \
             printf '%s\\n' \"$line\" | {real} worker; exit ;;\nesac\n\
             echo '{{\"event\":\"hello\",\"protocol\":{protocol},\"odai_version\":\"0.1.0\"}}'\n{cell}\n",
            real = bin().display(),
            protocol = odai::protocol::PROTOCOL_VERSION
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn stand_in_farm(dir: &Path, odai: &Path) -> PathBuf {
    let farm = dir.join("farm.toml");
    fs::write(
        &farm,
        format!(
            "[[device]]\nname = \"box\"\ntransport = \"local\"\nodai = {}\n",
            toml_str(&odai.display().to_string())
        ),
    )
    .unwrap();
    farm
}

#[test]
fn a_worker_killed_by_sigkill_is_recorded_as_such_not_as_out_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let farm = stand_in_farm(dir.path(), &stand_in_odai(dir.path(), "kill -9 $$"));
    let matrix = dir.path().join("toy.toml");
    fs::write(&matrix, TOY).unwrap();
    let out = dir.path().join("out");
    let run = run_matrix(&matrix, &farm, &out, &[]);
    assert_eq!(run.status.code(), Some(1));
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["status"], "failed");
        // A local device: odai reads the kernel's count of OOM kills where it can.
        let readable = odai::probe::memory::oom_kills(&odai::sysroot::SysRoot::live()).is_some();
        assert_eq!(
            r["reason"],
            if readable {
                "the worker was killed by SIGKILL, not by the OOM killer (the kernel counted no \
                 OOM kill)"
            } else {
                "the worker was killed by SIGKILL (out of memory? the kernel's count of OOM \
                 kills cannot be read from here)"
            }
        );
    }
}

#[test]
fn a_cell_past_its_timeout_is_stopped_and_recorded_failed() {
    let dir = tempfile::tempdir().unwrap();
    // Hangs for an hour: only the cell timeout lets the run end before run_matrix's own
    // 300 s limit kills it (and the exit status below then fails).
    let farm = stand_in_farm(dir.path(), &stand_in_odai(dir.path(), "exec sleep 3600"));
    let matrix = dir.path().join("toy.toml");
    fs::write(&matrix, TOY).unwrap();
    let out = dir.path().join("out");
    let run = run_matrix(&matrix, &farm, &out, &["--cell-timeout", "1s"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[0]["reason"],
        "timed out after 1s (raise --cell-timeout for long cells)"
    );
}

/// Found when a stand-in answered a probe and then slept: the coordinator waited for the
/// worker's stdout to close. The answer is the last line; a lingering worker is stopped.
#[test]
fn a_worker_that_lingers_after_its_answer_is_not_waited_on() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let odai_path = dir.path().join("lingering-odai");
    fs::write(
        &odai_path,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec {real} --version ;; esac\n\
             {real} worker\nexec sleep 3600\n",
            real = bin().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&odai_path, fs::Permissions::from_mode(0o755)).unwrap();
    let farm = stand_in_farm(dir.path(), &odai_path);
    // The worker lingers an hour after answering: waiting on it would run into odai()'s 120 s
    // limit, which kills the check and fails the status below.
    let check = odai()
        .args(["farm", "check", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn farm_deploy_copies_odai_over_scp_and_checks_it_runs() {
    let a = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, with a space: deploy creates it.
    let target = dir.path().join("opt odai/bin/odai");
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        a.device("box", &target, &[]) + &local_device("here", &[]),
    )
    .unwrap();
    let before = odai()
        .args(["farm", "check", "--format", "json", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    assert_eq!(before.status.code(), Some(1), "odai is not there yet");
    let rows: Value = serde_json::from_slice::<Value>(&before.stdout).unwrap()["devices"].clone();
    assert!(
        rows[0]["status"].as_str().unwrap().starts_with(
            "odai could not be started there (exit 127; `odai farm deploy` installs it)"
        ),
        "{rows}"
    );
    let deploy = odai()
        .args(["farm", "deploy", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    assert!(
        deploy.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deploy.stdout),
        stderr(&deploy)
    );
    let table = String::from_utf8(deploy.stdout).unwrap();
    assert!(table.starts_with("DEVICE  TRANSPORT"), "{table}");
    assert!(
        table.contains("x86_64-unknown-linux-gnu") || table.contains("aarch64-unknown-linux-gnu")
    );
    assert!(table.contains("deployed"), "{table}");
    assert!(
        table.contains("local: runs this odai, nothing to copy"),
        "{table}"
    );
    assert_eq!(fs::read(&target).unwrap(), fs::read(bin()).unwrap());
    let after = odai()
        .args(["farm", "check", "--farm"])
        .arg(&farm)
        .output()
        .unwrap();
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
}

#[test]
fn regression_farm_deploy_refuses_a_copy_cut_short_or_altered() {
    // Found in review: `farm deploy` said "deployed" for a binary missing its last 64 KiB and
    // for one with a flipped byte: only `--version` was checked. An `ssh` first on PATH that
    // damages what `cat > …` receives (the last 64 KiB cut, or one byte flipped) stands in for
    // a bad link; the real ssh carries the rest.
    let a = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let real_ssh = std::process::Command::new("sh")
        .args(["-c", "command -v ssh"])
        .output()
        .unwrap();
    let real_ssh = String::from_utf8(real_ssh.stdout)
        .unwrap()
        .trim()
        .to_owned();
    for (what, damage) in [
        ("cut", "head -c -65536"),
        (
            "flipped",
            "{ head -c 1000; head -c 1 | tr '\\000-\\377' '\\001-\\377\\000'; cat; }",
        ),
    ] {
        let wrap = dir.path().join(format!("bin-{what}"));
        fs::create_dir_all(&wrap).unwrap();
        let ssh = wrap.join("ssh");
        fs::write(
            &ssh,
            format!(
                "#!/bin/sh\ncase \"$*\" in\n  *'cat > '*) {damage} | exec {real_ssh} \"$@\" ;;\n  \
                 *) exec {real_ssh} \"$@\" ;;\nesac\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let target = dir.path().join(format!("{what}/odai"));
        let farm = dir.path().join(format!("farm-{what}.toml"));
        fs::write(&farm, a.device("box", &target, &[])).unwrap();
        let path = format!(
            "{}:{}",
            wrap.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let deploy = odai()
            .env("PATH", path)
            .args(["farm", "deploy", "--format", "json", "--farm"])
            .arg(&farm)
            .output()
            .unwrap();
        assert_eq!(deploy.status.code(), Some(1), "{what}: {}", stderr(&deploy));
        let rows: Value =
            serde_json::from_slice::<Value>(&deploy.stdout).unwrap()["devices"].clone();
        let status = rows[0]["status"].as_str().unwrap();
        let size = fs::metadata(bin()).unwrap().len();
        assert!(
            status.starts_with("the copy on the device is ")
                && status.contains(&format!("not the {size} bytes (sha256 "))
                && status.ends_with(
                    "sent: the transfer was cut or altered; nothing was replaced, deploy again"
                ),
            "{what}: {status}"
        );
        assert!(!target.exists(), "{what}: a damaged copy replaced odai");
        assert!(!target.with_file_name("odai.deploying").exists());
    }
}

#[test]
fn device_selectors_pick_devices_by_tag_or_probed_class() {
    let dir = tempfile::tempdir().unwrap();
    let farm = dir.path().join("farm.toml");
    fs::write(
        &farm,
        format!(
            "[[device]]\nname = \"tagged\"\ntransport = \"local\"\ntags = [\"phone\"]\n\n\
             [[device]]\nname = \"pi\"\ntransport = \"local\"\nenv = {{ ODAI_ROOT = {} }}\n\n\
             [[device]]\nname = \"other\"\ntransport = \"local\"\n",
            toml_str(&fixture("raspberry-pi-5").display().to_string())
        ),
    )
    .unwrap();
    let matrix = dir.path().join("m.toml");
    fs::write(
        &matrix,
        format!("{TOY}\n[devices]\ntags = [\"phone\"]\nclasses = [\"single-board-computer\"]\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = run_matrix(&matrix, &farm, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let recs = records(&out);
    let mut devices: Vec<&str> = recs.iter().map(|r| r["device"].as_str().unwrap()).collect();
    devices.sort();
    devices.dedup();
    assert_eq!(devices, ["pi", "tagged"]);
    let text = String::from_utf8(run.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("other")
                && l.ends_with("not selected by the matrix")),
        "{text}"
    );
}
