//! Staged faults, each against the real binary: a results directory on a full filesystem, an
//! unwritable `--out`, a worker out of memory, a worker that floods or never ends a line, a farm
//! device that answers with a newer protocol, with garbage or not at all, and the wall clock
//! stepping back mid-run. Each ends with every finished result intact and one line that says what
//! to do. Mounts (tmpfs) and memory cgroups need root, which the test script runs as; elsewhere
//! those tests say why they did not run, and fail instead where ODAI_REQUIRE_ROOT_TESTS is set.

// Staged Linux faults: tmpfs mounts, memory cgroups, an LD_PRELOAD clock shim.
#![cfg(target_os = "linux")]

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{cache, odai, records};
use serde_json::Value;

/// Six cells of the toy model: the harness, not a model, is under test.
const SIX_CELLS: &str = "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1]\n\
                         prompt_tokens = [8, 12, 16, 20, 24, 28]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n";
const TWO_CELLS: &str = "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1, 2]\n\
                         prompt_tokens = [16]\ngen_tokens = [8]\nreps = 1\nwarmup = 0\n";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn matrix_run(matrix: &Path, out: &Path, extra: &[&str]) -> Output {
    odai()
        .env("ODAI_CACHE_DIR", cache())
        .timeout(std::time::Duration::from_secs(300))
        .args(["matrix", "run"])
        .arg(matrix)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Whether a test that needs root may skip here; panics where root tests are required.
fn skip_without(what: &str, why: &str) {
    assert!(
        std::env::var_os("ODAI_REQUIRE_ROOT_TESTS").is_none(),
        "{what}: {why} (ODAI_REQUIRE_ROOT_TESTS is set)"
    );
    eprintln!("skipped: {what}: {why}");
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "odai-test"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_owned()))
    }

    fn free_bytes(&self) -> u64 {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statvfs fills the zeroed struct for a valid path.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s.f_bavail * s.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const PAGE: u64 = 4096;
fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE) * PAGE
}

#[test]
fn a_full_disk_mid_matrix_loses_no_finished_result_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, SIX_CELLS).unwrap();
    // The sizes of what a run writes, from a run on a roomy disk.
    let roomy = dir.path().join("roomy");
    let reference = matrix_run(&m, &roomy, &[]);
    assert!(reference.status.success(), "{}", stderr(&reference));
    let size = |name: &str| fs::metadata(roomy.join(name)).unwrap().len();
    let line = fs::read_to_string(roomy.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| l.len() as u64 + 1)
        .max()
        .unwrap();

    let mount = match Tmpfs::mount(&dir.path().join("small"), "size=2m") {
        Ok(t) => t,
        Err(why) => return skip_without("the full-disk test", &why),
    };
    // Leave room for the manifest (twice: its atomic rewrite), the probe, the lock and two and a
    // half records: the third record meets a full disk.
    let room = 2 * pages(size("manifest.json"))
        + pages(size("probe-local.json"))
        + PAGE
        + pages(line * 5 / 2);
    let filler = mount.0.join("filler");
    let free = mount.free_bytes();
    assert!(
        free > room,
        "a 2 MiB tmpfs holds {free} bytes, the run needs {room}"
    );
    fs::write(&filler, vec![0u8; (free - room) as usize]).unwrap();
    let out = mount.0.join("out");
    let full = matrix_run(&m, &out, &[]);
    assert_eq!(full.status.code(), Some(1), "{}", stderr(&full));
    let err = stderr(&full);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "odai: error: cannot write a result to {} (disk full? free space, then run again with --resume): ",
            out.join("results.jsonl").display()
        )) && last.ends_with("No space left on device (os error 28)"),
        "{err}"
    );
    // Every line on disk is a whole record; some, not all, cells finished.
    let text = fs::read_to_string(out.join("results.jsonl")).unwrap();
    for l in text.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("a torn record ({e}): {l}"));
    }
    let before = records(&out);
    eprintln!(
        "{} of 6 cells recorded before the disk filled",
        before.len()
    );
    assert!(
        (1..6).contains(&before.len()),
        "{} records: the disk did not fill mid-matrix",
        before.len()
    );

    // Space returns: --resume runs what is missing and keeps what was there.
    fs::remove_file(&filler).unwrap();
    let resumed = matrix_run(&m, &out, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let after = records(&out);
    assert_eq!(after.len(), 6);
    let mut ids: Vec<&str> = after
        .iter()
        .map(|r| r["cell_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "a cell recorded twice");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "a finished record changed"
    );
}

#[test]
fn an_unwritable_out_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, TWO_CELLS).unwrap();
    // A file where the directory should be.
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let out = file.join("out");
    let run = matrix_run(&m, &out, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        stderr(&run),
        format!(
            "odai: error: cannot create the results directory {} (choose a writable --out): Not a directory (os error 20)\n",
            out.display()
        )
    );
    // A read-only filesystem.
    let ro = match Tmpfs::mount(&dir.path().join("ro"), "ro,size=1m") {
        Ok(t) => t,
        Err(why) => return skip_without("the read-only --out test", &why),
    };
    let out = ro.0.join("out");
    let run = matrix_run(&m, &out, &[]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        stderr(&run),
        format!(
            "odai: error: cannot create the results directory {} (choose a writable --out): Read-only file system (os error 30)\n",
            out.display()
        )
    );
}

/// A farm of one local device whose odai is `script` (a shell script run with the real odai as
/// `$ODAI`), and the toy matrix to run on it.
fn stand_in(dir: &Path, script: &str) -> (PathBuf, PathBuf) {
    let odai_path = dir.join("odai-on-device");
    fs::write(
        &odai_path,
        format!(
            "#!/bin/sh\nODAI={}\n{script}\n",
            assert_cmd::cargo::cargo_bin("odai").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&odai_path, fs::Permissions::from_mode(0o755)).unwrap();
    let farm = dir.join("farm.toml");
    fs::write(
        &farm,
        format!(
            "[[device]]\nname = \"box\"\ntransport = \"local\"\nodai = \"{}\"\n",
            odai_path.display()
        ),
    )
    .unwrap();
    let m = dir.join("m.toml");
    fs::write(&m, TWO_CELLS).unwrap();
    (farm, m)
}

/// A stand-in that answers probes with the real odai and runs `cell` for a cell request.
fn on_cell(cell: &str) -> String {
    format!(
        "read line\ncase \"$line\" in *'\"request\":\"probe\"'*)\n  \
         printf '%s\\n' \"$line\" | \"$ODAI\" worker; exit ;;\nesac\n{cell}"
    )
}

/// A stand-in worker's greeting, in this odai's protocol.
fn hello() -> String {
    format!(
        "echo '{{\"event\":\"hello\",\"protocol\":{},\"odai_version\":\"0.1.0\"}}'",
        odai::protocol::PROTOCOL_VERSION
    )
}

fn reasons(out: &Path) -> Vec<String> {
    records(out)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_worker_out_of_memory_is_recorded_as_out_of_memory() {
    // RLIMIT_AS (ulimit -v) on the device's worker only: 120 MiB of address space cannot hold
    // the 135M model's 144 MB of weights, so loading fails.
    let dir = tempfile::tempdir().unwrap();
    let (farm, _) = stand_in(dir.path(), "ulimit -v 122880\nexec \"$ODAI\" \"$@\"");
    let m = dir.path().join("big.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\"]\nthreads = [1]\n\
         prompt_tokens = [8]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = matrix_run(&m, &out, &["--farm", farm.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let why = reasons(&out);
    assert_eq!(why.len(), 1);
    assert!(why[0].starts_with("out of memory"), "{why:?}");
}

#[test]
fn a_worker_killed_by_the_oom_killer_is_recorded_as_out_of_memory() {
    // A memory cgroup of 64 MiB around `odai bench --force` (past its own fit check, which sees
    // the limit): the kernel's OOM killer ends the worker once the model's weights outgrow it.
    let Some(cg) = memory_cgroup(64 << 20) else {
        return;
    };
    let procs = cg.0.join("cgroup.procs");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("odai"));
    cmd.env("ODAI_CACHE_DIR", cache()).args([
        "bench",
        "--synthetic",
        "smollm2-135m:q4_0",
        "-p",
        "8",
        "-n",
        "4",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--force",
        "--format",
        "json",
    ]);
    // The synthetic file is written before the run, outside the cgroup.
    let warm = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q4_0",
            "-p",
            "8",
            "-n",
            "1",
        ])
        .args(["--reps", "1", "--warmup", "0", "--threads", "1"])
        .output()
        .unwrap();
    assert!(warm.status.success(), "{}", stderr(&warm));
    {
        use std::os::unix::process::CommandExt;
        let procs = procs.clone();
        // SAFETY: only writes a file between fork and exec.
        unsafe {
            cmd.pre_exec(move || fs::write(&procs, std::process::id().to_string()));
        }
    }
    let run = cmd.output().unwrap();
    let err = stderr(&run);
    assert_ne!(run.status.code(), Some(0), "{err}");
    assert!(
        err.contains("the worker was killed by the kernel's OOM killer (out of memory)"),
        "{err}"
    );
}

#[test]
fn regression_a_remote_worker_killed_by_the_oom_killer_is_said_to_be_by_the_devices_kernel() {
    // Found in review: every SIGKILL was "likely out of memory"; then a local worker's was told
    // apart by its cgroup's count of OOM kills, and a remote one's stayed "out of memory?".
    // Now a remote worker's hello carries the device's count (/proc/vmstat) and a fresh
    // worker's, after the kill, says whether the OOM killer did it. Over real SSH, the worker
    // of a cell joins a 64 MiB memory cgroup and grows past it (`tail /dev/zero` holds a line
    // that never ends); a probe and a greeting-only worker run outside it.
    let Some(cg) = memory_cgroup(64 << 20) else {
        return;
    };
    let a = common::sshd::Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let stand_in = dir.path().join("odai-on-device");
    let script = r#"#!/bin/sh
ODAI=@ODAI@
# The hello with this kernel's count of OOM kills, as odai's worker says it.
greet() {
  n=$(awk '/^oom_kill /{print $2}' /proc/vmstat)
  echo "{\"event\":\"hello\",\"protocol\":@PROTOCOL@,\"odai_version\":\"0.1.0\",\"oom_kills\":$n}"
}
# No request: a greeting-only worker.
if ! read line; then greet; exit 0; fi
case "$line" in *'"request":"probe"'*)
  printf '%s\n' "$line" | exec "$ODAI" worker ;;
esac
greet
echo $$ > @PROCS@
exec tail /dev/zero
"#;
    fs::write(
        &stand_in,
        script
            .replace(
                "@ODAI@",
                &assert_cmd::cargo::cargo_bin("odai").display().to_string(),
            )
            .replace("@PROTOCOL@", &odai::protocol::PROTOCOL_VERSION.to_string())
            .replace("@PROCS@", &cg.0.join("cgroup.procs").display().to_string()),
    )
    .unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let farm = dir.path().join("farm.toml");
    fs::write(&farm, a.device("box", &stand_in, &[])).unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, TWO_CELLS).unwrap();
    let out = dir.path().join("out");
    let run = matrix_run(&m, &out, &["--farm", farm.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let why = reasons(&out);
    assert_eq!(why.len(), 2);
    assert!(
        why.iter()
            .all(|w| w
                .starts_with("the worker was killed by the kernel's OOM killer (out of memory)")),
        "{why:?}"
    );
}

/// A child memory cgroup (v1) of the test's own, limited to `bytes`; removed when dropped.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its processes have ended; a cgroup with none can be removed.
        let _ = fs::remove_dir(&self.0);
    }
}

fn memory_cgroup(bytes: u64) -> Option<Cgroup> {
    let mine = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(path) = mine.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_owned())
    }) else {
        skip_without(
            "the OOM-killer test",
            "no cgroup v1 memory controller (a cgroup v2 host keeps processes out of inner groups)",
        );
        return None;
    };
    // One per test: tests of one process run side by side.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let cg = PathBuf::from(format!(
        "/sys/fs/cgroup/memory{}/odai-oom-test-{}-{}",
        path.trim_end_matches('/'),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    if let Err(e) = fs::create_dir(&cg) {
        skip_without(
            "the OOM-killer test",
            &format!("cannot create {}: {e}", cg.display()),
        );
        return None;
    }
    let cg = Cgroup(cg);
    fs::write(cg.0.join("memory.limit_in_bytes"), bytes.to_string()).unwrap();
    // No swap to escape to.
    let _ = fs::write(cg.0.join("memory.memsw.limit_in_bytes"), bytes.to_string());
    Some(cg)
}

/// `odai matrix run M --farm FARM --out OUT`, not yet started.
fn farm_run(m: &Path, farm: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("odai"));
    cmd.env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(m)
        .arg("--farm")
        .arg(farm)
        .arg("--out")
        .arg(out);
    cmd
}

/// Runs `cmd` and returns its output and its peak resident memory in bytes: the largest VmHWM
/// that /proc/PID/status showed while it ran (a high-water mark, so a peak between two reads is
/// still seen). Not wait4's ru_maxrss: std starts children with posix_spawn (CLONE_VM), and the
/// kernel carries the parent's high-water mark into the child's at exec (fs/exec.c,
/// setmax_mm_hiwater_rss), so the test process — every integration test shares one — would be
/// measured as the coordinator (regression: 1449 MiB "peaks" once the tests became one binary).
fn output_and_peak_rss(mut cmd: Command) -> (std::process::ExitStatus, String, u64) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let mut peak = 0u64;
    let status = loop {
        let hwm = fs::read_to_string(&status_file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak = peak.max(hwm.unwrap_or(0) * 1024);
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // Polling interval only: the high-water mark keeps what happened between reads.
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(peak > 0, "no VmHWM was read from {status_file}");
    (status, reader.join().unwrap(), peak)
}

#[test]
fn a_worker_that_floods_one_line_cannot_exhaust_the_coordinators_memory() {
    let hello = hello();
    // 400 MB without a newline after the hello: read whole, that line alone would be 400 MB of
    // the coordinator's memory.
    let dir = tempfile::tempdir().unwrap();
    let (farm, m) = stand_in(
        dir.path(),
        &on_cell(&format!("{hello}\nexec head -c 400000000 /dev/zero")),
    );
    let out = dir.path().join("out");
    let (status, err, peak) = output_and_peak_rss(farm_run(&m, &farm, &out));
    assert_eq!(status.code(), Some(1), "{err}");
    let why = reasons(&out);
    assert_eq!(why.len(), 2);
    assert!(
        why.iter().all(|w| *w
            == format!(
                "the worker sent a line longer than 64 MiB (a flood, not protocol {}); it was stopped",
                odai::protocol::PROTOCOL_VERSION
            )),
        "{why:?}"
    );
    assert!(
        peak < 250 << 20,
        "the coordinator peaked at {} MiB reading a flood",
        peak >> 20
    );
}

#[test]
fn regression_a_worker_flooding_progress_lines_cannot_grow_the_coordinator() {
    // Found in review: a worker's progress lines went through an unbounded channel, and a worker
    // writing them faster than the coordinator shows them grew it to 0.2–0.75 GB per device.
    // The channel is bounded now: the flood waits on its own pipe.
    let hello = hello();
    let dir = tempfile::tempdir().unwrap();
    let (farm, m) = stand_in(
        dir.path(),
        &on_cell(&format!(
            "{hello}\nyes '{{\"event\":\"progress\",\"message\":\"{}\"}}' | head -n 1000000",
            "x".repeat(200)
        )),
    );
    let out = dir.path().join("out");
    let (status, err, peak) = output_and_peak_rss(farm_run(&m, &farm, &out));
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(reasons(&out).len(), 2);
    // A million lines of 240 bytes: 240 MB had they piled up.
    eprintln!("the coordinator peaked at {} MiB", peak >> 20);
    assert!(
        peak < 100 << 20,
        "the coordinator peaked at {} MiB under a flood of progress lines",
        peak >> 20
    );
}

#[test]
fn a_worker_that_never_ends_its_line_fails_the_cell_at_its_timeout() {
    let hello = hello();
    let dir = tempfile::tempdir().unwrap();
    let (farm, m) = stand_in(
        dir.path(),
        &on_cell(&format!(
            "{hello}\nprintf '{{\"event\":\"progress\",\"message\":\"rep'\nexec sleep 3600"
        )),
    );
    let out = dir.path().join("out");
    let run = matrix_run(
        &m,
        &out,
        &["--farm", farm.to_str().unwrap(), "--cell-timeout", "1s"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert_eq!(
        reasons(&out),
        vec!["timed out after 1s (raise --cell-timeout for long cells)"; 2]
    );
}

#[test]
fn regression_a_worker_that_exits_while_its_child_holds_stdout_is_not_waited_on() {
    // Found in review: a worker that exited while a process it started in the background still
    // held its stdout cost the whole cell timeout (the coordinator read on until the pipe
    // closed). Here the child sleeps for an hour behind a 300 s cell timeout: the cells must be
    // recorded with the worker's own failure, long before either.
    let hello = hello();
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let (farm, m) = stand_in(
        dir.path(),
        &on_cell(&format!(
            "{hello}\nsleep 3600 &\necho $! >>'{}'\necho 'cannot run this cell' >&2\nexit 3",
            pids.display()
        )),
    );
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let run = matrix_run(
        &m,
        &out,
        &["--farm", farm.to_str().unwrap(), "--cell-timeout", "300s"],
    );
    let took = started.elapsed();
    for pid in fs::read_to_string(&pids)
        .unwrap_or_default()
        .split_whitespace()
    {
        let _ = Command::new("kill").arg(pid).status();
    }
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let why = reasons(&out);
    assert_eq!(why.len(), 2);
    assert!(
        why.iter().all(|w| w.starts_with(
            "the worker exited with 3 without a result: cannot run this cell (the worker's stderr: "
        )),
        "{why:?}"
    );
    // Not a timing threshold: 300 s is the cell timeout the old code waited out per cell.
    assert!(took < std::time::Duration::from_secs(300), "{took:?}");
}

#[test]
fn a_device_answering_a_newer_protocol_is_given_up_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (farm, m) = stand_in(
        dir.path(),
        "read line\necho '{\"event\":\"hello\",\"protocol\":99,\"odai_version\":\"9.0.0\"}'\nexec sleep 3600",
    );
    let out = dir.path().join("out");
    let run = matrix_run(&m, &out, &["--farm", farm.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let why = reasons(&out);
    assert_eq!(why.len(), 2, "every cell recorded");
    assert!(
        why.iter()
            .all(|w| w.contains("protocol 99") && w.contains("odai farm deploy")),
        "{why:?}"
    );
}

#[test]
fn a_device_answering_garbage_fails_its_cells_with_what_it_said() {
    let hello = hello();
    let dir = tempfile::tempdir().unwrap();
    let (farm, m) = stand_in(
        dir.path(),
        &on_cell(&format!(
            "{hello}\necho 'Welcome to BusyBox v1.36'\nexec sleep 3600"
        )),
    );
    let out = dir.path().join("out");
    let run = matrix_run(&m, &out, &["--farm", farm.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert_eq!(
        reasons(&out),
        vec![
            format!(
                "the worker said something outside protocol {}: \"Welcome to BusyBox v1.36\"",
                odai::protocol::PROTOCOL_VERSION
            );
            2
        ]
    );
}

#[test]
fn a_device_that_hangs_after_hello_on_its_probe_is_offline_not_a_hung_run() {
    let hello = hello();
    let dir = tempfile::tempdir().unwrap();
    let (farm, m) = stand_in(dir.path(), &format!("read line\n{hello}\nexec sleep 3600"));
    let out = dir.path().join("out");
    let run = matrix_run(
        &m,
        &out,
        &[
            "--farm",
            farm.to_str().unwrap(),
            "--retries",
            "0",
            "--probe-timeout",
            "2s",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let why = reasons(&out);
    assert_eq!(why.len(), 2, "{}", stderr(&run));
    assert!(
        why.iter().all(|w| w.contains("timed out after 2s")),
        "{why:?}"
    );
}

/// An LD_PRELOAD shim stepping the wall clock (CLOCK_REALTIME) one hour further back on every
/// read, leaving the monotonic clock alone.
const CLOCK_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
static int (*real)(clockid_t, struct timespec *);
static long steps;
int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec -= 3600 * __atomic_add_fetch(&steps, 1, __ATOMIC_RELAXED);
    }
    return r;
}
"#;

#[test]
fn durations_hold_while_the_wall_clock_steps_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("shim.c");
    let shim = dir.path().join("shim.so");
    fs::write(&src, CLOCK_SHIM).unwrap();
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("a C compiler (the test script installs build-essential)");
    assert!(cc.status.success(), "{}", stderr(&cc));
    // The shim works: `date` under it is hours behind.
    let date = |preload: bool| -> i64 {
        let mut c = Command::new("date");
        c.arg("+%s");
        if preload {
            c.env("LD_PRELOAD", &shim);
        }
        String::from_utf8(c.output().unwrap().stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        date(false) - date(true) >= 3000,
        "the shim did not step the clock"
    );

    let run = odai()
        .env("ODAI_CACHE_DIR", cache())
        .env("LD_PRELOAD", &shim)
        .args([
            "bench",
            "--synthetic",
            "toy:q8_0",
            "-p",
            "16",
            "-n",
            "16",
            "--reps",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let v: Value = serde_json::from_slice(&run.stdout).unwrap();
    for rep in v["reps"].as_array().unwrap() {
        for key in ["load_ms", "ttft_ms", "first_ttft_ms"] {
            let ms = rep[key].as_f64().unwrap();
            // An hour stepped back between two reads of a wall clock would show as ±3.6e6 ms.
            assert!(
                ms > 0.0 && ms < 600_000.0,
                "{key} = {ms} with the wall clock stepping back"
            );
        }
        assert!(rep["decode_tps"].as_f64().unwrap() > 0.0);
        let tokens = rep["token_ms"].as_array().unwrap();
        assert_eq!(tokens.len(), 16);
        assert!(tokens.iter().all(|t| {
            let t = t.as_f64().unwrap();
            t > 0.0 && t < 600_000.0
        }));
    }
}

#[test]
fn regression_a_garbled_byte_costs_its_line_not_the_results() {
    // Found in review: one invalid UTF-8 byte in results.jsonl made the whole file read as
    // empty — report, compare and db import said "not an odai results directory", and --resume
    // ran every cell again and appended a second record of each; --resume also deleted lines it
    // could not read, with no word, even a newer odai's record; and with manifest.json deleted,
    // --resume would mix two matrices in one directory.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, TWO_CELLS).unwrap();
    let out = dir.path().join("out");
    let first = matrix_run(&m, &out, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let path = out.join("results.jsonl");
    let mut bytes = fs::read(&path).unwrap();
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let at = second
        + bytes[second..]
            .windows(7)
            .position(|w| w == b"\"local\"")
            .unwrap()
        + 1;
    bytes[at] = 0xFF;
    fs::write(&path, &bytes).unwrap();
    let garbled = bytes[second..bytes.len() - 1].to_vec();

    // report reads the other record and names the line it left out.
    let report = odai().arg("report").arg(&out).output().unwrap();
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(
        stderr(&report).contains(&format!(
            "odai: warning: {}:2: unreadable line left out (not UTF-8: invalid utf-8 sequence of 1 \
             bytes from index",
            path.display()
        )),
        "{}",
        stderr(&report)
    );

    // --resume keeps the line's bytes aside, runs that one cell again, records it once.
    let resumed = matrix_run(&m, &out, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(&format!(
            "odai: warning: 1 line(s) of {} were no readable record (torn or garbled): moved to \
             {}; their cells run again\n",
            path.display(),
            out.join("results.rejected.jsonl").display()
        )),
        "{}",
        stderr(&resumed)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_ne!(recs[0]["cell_id"], recs[1]["cell_id"]);
    let mut kept = fs::read(out.join("results.rejected.jsonl")).unwrap();
    assert_eq!(kept.pop(), Some(b'\n'));
    assert_eq!(kept, garbled);

    // A record this odai cannot read (a newer odai's): --resume stops, touching nothing.
    let text = fs::read_to_string(&path).unwrap();
    let foreign = text
        .lines()
        .next()
        .unwrap()
        .replace("\"status\":\"ok\"", "\"status\":\"paused\"");
    fs::write(&path, format!("{text}{foreign}\n")).unwrap();
    let refused = matrix_run(&m, &out, &["--resume"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.starts_with(&format!(
            "odai: error: {}: line 3 is a record this odai cannot read (not a record: unknown \
             variant `paused`",
            path.display()
        )) && err.ends_with("): resume with the odai that wrote it, or choose another --out\n")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{text}{foreign}\n")
    );

    // No manifest: nothing says which matrix the results are of.
    fs::write(&path, &text).unwrap();
    fs::remove_file(out.join("manifest.json")).unwrap();
    let refused = matrix_run(&m, &out, &["--resume"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert_eq!(
        stderr(&refused),
        format!(
            "odai: error: {}: is missing beside results.jsonl: nothing says which matrix those \
             results are of; restore it, or choose another --out\n",
            out.join("manifest.json").display()
        )
    );
}
