//! A fixed team of threads for the forward pass (issue 7): `run` hands one closure to every
//! member (the caller is member 0) and returns when all have finished it. A decode step is a few
//! hundred such rounds of tens of microseconds each; rayon's scope wakes sleeping workers through
//! the scheduler each time (perf showed more time in sched_yield than in the kernels), so members
//! spin on a generation counter between rounds and park only after a quiet spell, as ggml's
//! threadpool does.

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
    /// done.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.members.is_empty() {
            job(0);
            return;
        }
        let sh = &*self.shared;
        // SAFETY (lifetime erasure): members only dereference the pointer during this round,
        // and this function does not return before every member has reported done.
        let ptr: *const Job = unsafe { std::mem::transmute(job as *const (dyn Fn(usize) + Sync)) };
        *sh.job.lock().unwrap() = Some(JobPtr(ptr));
        sh.done.store(0, Ordering::SeqCst);
        sh.generation.fetch_add(1, Ordering::SeqCst);
        for (t, _) in &self.members {
            // A no-op for a spinning member (it just leaves a token); wakes a parked one.
            t.unpark();
        }
        job(0);
        while sh.done.load(Ordering::Acquire) < self.members.len() {
            std::hint::spin_loop();
        }
    }
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
        let job = sh
            .job
            .lock()
            .unwrap()
            .expect("a job is set before the generation moves");
        // SAFETY: run() keeps the job alive until this member reports done below.
        unsafe { (*job.0)(id) };
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
