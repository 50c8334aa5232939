//! Runs a plan's stages: each as soon as the stages it needs are done,
//! independent ones at the same time (one scoped thread per stage), and
//! the first failure cancels the rest.
//!
//! The resolver has already left out the stages the target does not need,
//! so every stage given here runs. The solver knows nothing of what a stage
//! does: the caller's function runs one, given the results of the stages
//! it depends on, and checks [`Cancel`] between its steps.

use kiln_frontend::stages::{Dependency, Stage};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Set when another stage failed or the build was interrupted: a running
/// stage should stop at its next step.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    /// Whether a failing stage set `flag` (rather than someone outside).
    by_failure: AtomicBool,
}

impl Cancel {
    /// A cancel flag that someone else can set too (a signal handler).
    pub fn new(flag: Arc<AtomicBool>) -> Cancel {
        Cancel {
            flag,
            by_failure: AtomicBool::new(false),
        }
    }

    /// True when the flag was set from outside before any stage failed.
    pub fn is_interrupted(&self) -> bool {
        self.is_cancelled() && !self.by_failure.load(Ordering::SeqCst)
    }

    /// True once the build is being cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag itself, for code that polls it while waiting (a running
    /// container is killed when it turns true).
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Ends the build's use of the flag: one set by a failing stage is put
    /// back, so the caller's flag (shared with a signal handler, or reused
    /// for the next build) does not read as an interrupt.
    pub fn finish(&self) {
        if self.by_failure.load(Ordering::SeqCst) {
            self.flag.store(false, Ordering::SeqCst);
        }
    }

    fn set(&self) {
        // Stages stopped by an interrupt fail too; only the first setter
        // says why the build was cancelled.
        if !self.flag.swap(true, Ordering::SeqCst) {
            self.by_failure.store(true, Ordering::SeqCst);
        }
    }
}

/// The results of finished stages, by their index in the Dockerfile.
pub type Finished<T> = BTreeMap<usize, Arc<T>>;

struct State<T, E> {
    done: Finished<T>,
    error: Option<E>,
}

/// Runs every stage of `stages` with `run`, each after the stages it
/// depends on ([`Dependency::Stage`]), and returns every stage's result.
/// `run` gets the stage and the results finished so far (its dependencies
/// among them). The first error is returned; stages not yet started then
/// never start, and running ones see [`Cancel::is_cancelled`]; so do they
/// when `cancel` is set from outside.
pub fn solve<T, E, F>(stages: &[Stage], cancel: &Cancel, run: F) -> Result<Finished<T>, E>
where
    T: Send + Sync,
    E: Send,
    F: Fn(&Stage, &Finished<T>, &Cancel) -> Result<T, E> + Sync,
{
    let state = Mutex::new(State {
        done: BTreeMap::new(),
        error: None,
    });
    let changed = Condvar::new();
    let known: Vec<usize> = stages.iter().map(|s| s.index).collect();
    std::thread::scope(|scope| {
        for stage in stages {
            let (state, changed, run, known) = (&state, &changed, &run, &known);
            scope.spawn(move || {
                // Only dependencies in the plan can be waited for; the
                // resolver guarantees the rest are not needed.
                let needs: Vec<usize> = stage
                    .dependencies
                    .iter()
                    .filter_map(|d| match d {
                        Dependency::Stage(i) if known.contains(i) => Some(*i),
                        _ => None,
                    })
                    .collect();
                let inputs = {
                    let mut s = lock(state);
                    loop {
                        if s.error.is_some() {
                            return;
                        }
                        if needs.iter().all(|i| s.done.contains_key(i)) {
                            break s.done.clone();
                        }
                        s = changed.wait(s).unwrap_or_else(|p| p.into_inner());
                    }
                };
                let result = run(stage, &inputs, cancel);
                let mut s = lock(state);
                match result {
                    Ok(value) => {
                        s.done.insert(stage.index, Arc::new(value));
                    }
                    Err(e) => {
                        if s.error.is_none() {
                            s.error = Some(e);
                        }
                        cancel.set();
                    }
                }
                changed.notify_all();
            });
        }
    });
    let s = state.into_inner().unwrap_or_else(|p| p.into_inner());
    match s.error {
        Some(e) => Err(e),
        None => Ok(s.done),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking stage poisons nothing we rely on: the state stays valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_frontend::stages::{Base, Platform};
    use std::sync::Barrier;
    use std::time::Duration;

    fn stage(index: usize, deps: &[usize]) -> Stage {
        Stage {
            index,
            name: None,
            base: Base::Scratch,
            platform: Platform::host(),
            line: index + 1,
            dependencies: deps.iter().map(|d| Dependency::Stage(*d)).collect(),
            steps: Vec::new(),
        }
    }

    #[test]
    fn dependencies_finish_first_and_results_are_passed_on() {
        let stages = [stage(0, &[]), stage(2, &[0]), stage(3, &[0, 2])];
        let got = solve(&stages, &Cancel::default(), |s, done, _| {
            let deps: Vec<usize> = s
                .dependencies
                .iter()
                .map(|d| match d {
                    Dependency::Stage(i) => *done[i],
                    Dependency::Image(_) => 0,
                })
                .collect();
            Ok::<usize, String>(s.index * 10 + deps.iter().sum::<usize>())
        })
        .unwrap();
        assert_eq!(*got[&0], 0);
        assert_eq!(*got[&2], 20);
        assert_eq!(*got[&3], 30 + 20);
    }

    #[test]
    fn independent_stages_overlap() {
        // Both stages wait for each other inside `run`: this only returns
        // if they run at the same time.
        let barrier = Barrier::new(2);
        let stages = [stage(0, &[]), stage(1, &[])];
        let got = solve(&stages, &Cancel::default(), |s, _, _| {
            barrier.wait();
            Ok::<usize, String>(s.index)
        })
        .unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn first_error_cancels_the_rest() {
        let stages = [stage(0, &[]), stage(1, &[]), stage(2, &[1])];
        let err = solve(
            &stages,
            &Cancel::default(),
            |s, _: &Finished<()>, cancel| match s.index {
                0 => Err("stage 0 failed".to_string()),
                1 => {
                    while !cancel.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err("cancelled".to_string())
                }
                _ => panic!("stage 2 depends on a cancelled stage and must not start"),
            },
        )
        .unwrap_err();
        assert_eq!(err, "stage 0 failed");
    }
}
