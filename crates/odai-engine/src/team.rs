//! A fixed team of threads for the forward pass (issue 7): `run` hands one closure to every
//! member (the caller is member 0) and returns when all have finished it. A decode step is a few
//! hundred such rounds of tens of microseconds each; rayon's scope wakes sleeping workers through
//! the scheduler each time (perf showed more time in sched_yield than in the kernels), so members
//! spin on a generation counter between rounds and park only after a quiet spell, as ggml's
//! threadpool does.
//!
//! Panic safety: a panicking job, in a member or in the caller's share, is caught; `run` waits
//! until every member is done with the round (none may still hold the job's pointer when the
//! caller's stack unwinds), then resumes the first panic on the caller. The team stays usable.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle member spins before it parks: long enough to span the gaps between rounds
/// within a forward pass and between decode steps, short enough not to burn a core once the
/// model stops running.
const SPIN_BEFORE_PARK: Duration = Duration::from_millis(2);

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Bumped by `run` once the job is in place; members run each generation once.
    generation: AtomicUsize,
    /// Members (other than the caller) that finished the current generation.
    done: AtomicUsize,
    stop: AtomicBool,
    /// The current job, valid while a round is in flight (see `run`).
    job: std::sync::Mutex<Option<JobPtr>>,
    /// The first panic a member hit in the current round, for `run` to resume on the caller.
    panic: std::sync::Mutex<Option<Box<dyn Any + Send>>>,
    /// Set with `panic`: the caller looks at the mutex only after a round that had one.
    panicked: AtomicBool,
}

#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is Sync and outlives the round it is used in (run waits for every member).
unsafe impl Send for JobPtr {}

/// A team of `size` threads: the caller and `size − 1` members.
pub struct Team {
    shared: Arc<Shared>,
    members: Vec<(Thread, JoinHandle<()>)>,
}

impl Team {
    pub fn new(size: usize) -> Team {
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            job: std::sync::Mutex::new(None),
            panic: std::sync::Mutex::new(None),
            panicked: AtomicBool::new(false),
        });
        let members = (1..size.max(1))
            .map(|id| {
                let sh = Arc::clone(&shared);
                let handle = thread::Builder::new()
                    .name(format!("odai-team-{id}"))
                    .spawn(move || member(&sh, id))
                    .expect("cannot start an inference thread");
                (handle.thread().clone(), handle)
            })
            .collect();
        Team { shared, members }
    }

    /// Threads in the team, the caller included.
    pub fn size(&self) -> usize {
        self.members.len() + 1
    }

    /// Runs `job(id)` for every id in 0..size, id 0 on the calling thread; returns when all are
    /// done. If any of them panicked, the panic is resumed here once all are done.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.members.is_empty() {
            job(0);
            return;
        }
        let sh = &*self.shared;
        // SAFETY (lifetime erasure): members only dereference the pointer during this round,
        // and this function does not return before every member has reported done.
        let ptr: *const Job = unsafe { std::mem::transmute(job as *const (dyn Fn(usize) + Sync)) };
        *lock(&sh.job) = Some(JobPtr(ptr));
        sh.done.store(0, Ordering::SeqCst);
        sh.generation.fetch_add(1, Ordering::SeqCst);
        for (t, _) in &self.members {
            // A no-op for a spinning member (it just leaves a token); wakes a parked one.
            t.unpark();
        }
        // The caller's share may panic too: its stack (which `job` may borrow from) must not
        // unwind while members still run the round.
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        while sh.done.load(Ordering::Acquire) < self.members.len() {
            std::hint::spin_loop();
        }
        *lock(&sh.job) = None;
        let theirs = if sh.panicked.swap(false, Ordering::AcqRel) {
            lock(&sh.panic).take()
        } else {
            None
        };
        match (mine, theirs) {
            (Err(p), _) | (Ok(()), Some(p)) => resume_unwind(p),
            (Ok(()), None) => {}
        }
    }
}

/// A mutex's guard even if a panic poisoned it: the data (a pointer, a payload) stays valid.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn member(sh: &Shared, id: usize) {
    let mut seen = 0usize;
    loop {
        let mut idle_since = None::<Instant>;
        let mut spins = 0u32;
        let generation = loop {
            let g = sh.generation.load(Ordering::SeqCst);
            if sh.stop.load(Ordering::Acquire) {
                return;
            }
            if g != seen {
                break g;
            }
            spins += 1;
            if spins.is_multiple_of(1024) {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() > SPIN_BEFORE_PARK {
                    // run() bumps the generation before unparking, so a wake-up is never lost:
                    // the token makes this park return at once if run() came in between.
                    thread::park();
                }
            }
            std::hint::spin_loop();
        };
        seen = generation;
        let job = *lock(&sh.job);
        if let Some(job) = job {
            // SAFETY: run() keeps the job alive until this member reports done below.
            let ran = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)(id) }));
            if let Err(p) = ran {
                lock(&sh.panic).get_or_insert(p);
                sh.panicked.store(true, Ordering::Release);
            }
        }
        // Done even after a panic: run() must never wait for a member that will not report.
        sh.done.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for (t, h) in self.members.drain(..) {
            t.unpark();
            let _ = h.join();
        }
    }
}

/// The rows of `0..n` member `id` of `size` takes: contiguous, balanced, in multiples of
/// `align` so no two members write the same cache line of the output.
pub fn share(n: usize, id: usize, size: usize, align: usize) -> std::ops::Range<usize> {
    let units = n.div_ceil(align);
    let (lo, hi) = (units * id / size, units * (id + 1) / size);
    (lo * align).min(n)..(hi * align).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_runs_each_round_once() {
        let team = Team::new(3);
        let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..1000 {
            team.run(&|id| {
                hits[id].fetch_add(1, Ordering::Relaxed);
            });
        }
        for h in &hits {
            assert_eq!(h.load(Ordering::Relaxed), 1000);
        }
    }

    #[test]
    fn members_wake_after_parking() {
        let team = Team::new(2);
        let n = AtomicUsize::new(0);
        team.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        // Past the spin spell: the member has parked and must be woken by the next round.
        thread::sleep(SPIN_BEFORE_PARK * 5); // five spin intervals: surely parked
        team.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn regression_a_member_panic_reaches_the_caller_instead_of_a_hang() {
        // Found in review: a panicking member never reported done, and run() spun forever.
        let team = Team::new(3);
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(&|id| {
                if id == 2 {
                    panic!("member two broke");
                }
            })
        }));
        let payload = r.expect_err("the member's panic is resumed on the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"member two broke"));
        // The team still works afterwards.
        let n = AtomicUsize::new(0);
        team.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn regression_a_caller_panic_waits_for_the_members() {
        // Found in review: a panic in the caller's share unwound its stack while members still
        // ran the job borrowing from it. Now run() waits for them before the panic goes on.
        let team = Team::new(2);
        let started = AtomicBool::new(false);
        let unwinding = AtomicBool::new(false);
        let member_finished = AtomicBool::new(false);
        /// Marks the caller's share as unwinding: dropped only by its panic.
        struct Unwinds<'a>(&'a AtomicBool);
        impl Drop for Unwinds<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(&|id| {
                if id == 0 {
                    let _mark = Unwinds(&unwinding);
                    while !started.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    panic!("caller broke");
                }
                started.store(true, Ordering::Release);
                // Still working once the caller's share has begun to unwind: a run() that
                // did not wait would return before this store.
                while !unwinding.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                member_finished.store(true, Ordering::Release);
            })
        }));
        assert!(r.is_err());
        assert!(
            member_finished.load(Ordering::Acquire),
            "run() returned while a member was still in the round"
        );
    }

    #[test]
    fn shares_cover_the_rows_once() {
        for (n, size, align) in [
            (1536, 2, 16),
            (49152, 3, 16),
            (7, 4, 4),
            (0, 2, 8),
            (5, 1, 16),
        ] {
            let mut next = 0;
            for id in 0..size {
                let r = share(n, id, size, align);
                assert_eq!(r.start, next);
                next = r.end;
            }
            assert_eq!(next, n);
        }
    }
}
