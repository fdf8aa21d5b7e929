//! A run's progress on stderr: on a terminal, indicatif bars — for a matrix one per device
//! (current cell, done/total, ETA) and one for the whole run, for `odai bench` one over its
//! repetitions; otherwise (CI logs, pipes) one plain line per finished cell, so a log reads the
//! same as the run went.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    /// The whole run's bar; None where one device's bar is the whole run (`steps`).
    overall: Option<ProgressBar>,
    devices: HashMap<String, ProgressBar>,
}

impl Progress {
    /// `devices`: each device's name and its number of cells.
    pub fn new(devices: &[(String, usize)]) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = devices
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(5)
            .min(24);
        let device_style = ProgressStyle::with_template(&format!(
            "{{prefix:>{width}}} {{bar:20}} {{pos:>3}}/{{len:<3}} eta {{eta:<4}} {{wide_msg}}"
        ))
        .expect("a valid template")
        .progress_chars("█▌ ");
        let mut map = HashMap::new();
        for (name, cells) in devices {
            let bar = multi.add(ProgressBar::new(*cells as u64));
            bar.set_style(device_style.clone());
            bar.set_prefix(name.clone());
            bar.set_message("connecting");
            map.insert(name.clone(), bar);
        }
        let total: usize = devices.iter().map(|(_, c)| c).sum();
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>{width}}} {{bar:20}} {{pos:>3}}/{{len:<3}} eta {{eta:<4}} {{elapsed}} elapsed"
            ))
            .expect("a valid template")
            .progress_chars("█▌ "),
        );
        overall.set_prefix("all");
        overall.enable_steady_tick(Duration::from_millis(500));
        Progress {
            bars: Some(Bars {
                multi,
                overall: Some(overall),
                devices: map,
            }),
        }
    }

    /// One bar of `total` steps named `name`, with its ETA and elapsed time: a run on this
    /// device alone (`odai bench`: its repetitions, warm-ups included). Hidden off a terminal.
    pub fn steps(name: &str, total: usize) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = multi.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:20} {pos:>3}/{len:<3} eta {eta:<4} {elapsed} elapsed {wide_msg}",
            )
            .expect("a valid template")
            .progress_chars("█▌ "),
        );
        bar.set_prefix(name.to_owned());
        bar.enable_steady_tick(Duration::from_millis(500));
        Progress {
            bars: Some(Bars {
                multi,
                overall: None,
                devices: HashMap::from([(name.to_owned(), bar)]),
            }),
        }
    }

    /// A step of `device` is done (`steps`: a repetition), without a line.
    pub fn step(&self, device: &str) {
        if let Some(b) = &self.bars
            && let Some(bar) = b.devices.get(device)
        {
            bar.inc(1);
        }
    }

    /// Runs `f` (which prints) with the bars cleared, so its output and the bars do not mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bars {
            Some(b) => b.multi.suspend(f),
            None => f(),
        }
    }

    /// A cell starts on `device`.
    pub fn started(&self, device: &str, what: &str) {
        if let Some(b) = &self.bars
            && let Some(bar) = b.devices.get(device)
        {
            bar.set_message(what.to_owned());
        }
    }

    /// What a running cell's worker says (`rep 2/5`).
    pub fn worker_says(&self, device: &str, what: &str, message: &str) {
        self.say(device, &format!("{what}: {message}"));
    }

    /// Shows `message` beside `device`'s bar.
    pub fn say(&self, device: &str, message: &str) {
        let message = &*crate::units::printable(message);
        if let Some(b) = &self.bars
            && let Some(bar) = b.devices.get(device)
        {
            bar.set_message(message.to_owned());
        }
    }

    /// A cell ended on `device` (`line` says how); it counts towards the bars.
    pub fn finished(&self, device: &str, line: &str) {
        let line = &*crate::units::printable(line);
        match &self.bars {
            None => eprintln!("{line}"),
            Some(b) => {
                b.multi.suspend(|| eprintln!("{line}"));
                if let Some(bar) = b.devices.get(device) {
                    bar.inc(1);
                }
                if let Some(o) = &b.overall {
                    o.inc(1);
                }
            }
        }
    }

    /// Something about the device itself (offline, not selected, probed as a class).
    pub fn note(&self, device: &str, line: &str) {
        let line = &*crate::units::printable(line);
        match &self.bars {
            None => eprintln!("{line}"),
            Some(b) => {
                b.multi.suspend(|| eprintln!("{line}"));
                if let Some(bar) = b.devices.get(device) {
                    bar.set_message(line.to_owned());
                }
            }
        }
    }

    /// The device has nothing more to run.
    pub fn device_done(&self, device: &str, how: &str) {
        if let Some(b) = &self.bars
            && let Some(bar) = b.devices.get(device)
        {
            bar.finish_with_message(how.to_owned());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            match &b.overall {
                Some(o) => o.finish(),
                None => b.devices.values().for_each(ProgressBar::finish_and_clear),
            }
        }
    }
}
