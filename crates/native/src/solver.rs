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
///
/// The caller's interrupt flag is read, never written: it may be shared by
/// several builds (a pipeline's, and its signal handler), and a stage that
/// fails in one must not stop the others. The build's own flag, which
/// running steps poll, turns true on a failure here or, within
/// `MIRROR_EVERY`, on the caller's interrupt.
#[derive(Debug)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    /// The caller's interrupt flag (a signal handler's).
    interrupt: Arc<AtomicBool>,
    /// Whether a failing stage set `flag` (rather than an interrupt).
    by_failure: AtomicBool,
    /// Stops the thread that copies `interrupt` into `flag`.
    done: Arc<AtomicBool>,
}

/// How often the caller's interrupt is copied into the build's flag.
const MIRROR_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel::new(Arc::default())
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

impl Cancel {
    /// A build's cancel flag, set too when `interrupt` is (by a signal
    /// handler, or another thread).
    pub fn new(interrupt: Arc<AtomicBool>) -> Cancel {
        let flag = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (mirror, watched, stop) = (flag.clone(), interrupt.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if watched.load(Ordering::SeqCst) {
                    mirror.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(MIRROR_EVERY);
            }
        });
        Cancel {
            flag,
            interrupt,
            by_failure: AtomicBool::new(false),
            done,
        }
    }

    /// True when the build was interrupted from outside before any stage
    /// failed.
    pub fn is_interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst) && !self.by_failure.load(Ordering::SeqCst)
    }

    /// True once the build is being cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || self.interrupt.load(Ordering::SeqCst)
    }

    /// The build's flag, for code that polls it while waiting (a running
    /// container is killed when it turns true).
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    fn set(&self) {
        // Stages stopped by an interrupt fail too; only the first setter
        // says why the build was cancelled.
        if !self.flag.swap(true, Ordering::SeqCst) && !self.interrupt.load(Ordering::SeqCst) {
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

/// A stage's `run` panicked (a bug in kiln, or in an event sink's
/// callback): the build fails with this instead of leaving the stages that
/// wait for that one waiting forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePanic {
    /// The stage's index.
    pub stage: usize,
    /// The panic's message.
    pub message: String,
}

impl std::fmt::Display for StagePanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {} stopped: kiln panicked ({}); this is a bug, please report it",
            self.stage, self.message
        )
    }
}

impl From<StagePanic> for String {
    fn from(p: StagePanic) -> String {
        p.to_string()
    }
}

impl From<StagePanic> for kiln_backend::BuildError {
    fn from(p: StagePanic) -> kiln_backend::BuildError {
        kiln_backend::BuildError::Request(p.to_string())
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Runs every stage of `stages` with `run`, each after the stages it
/// depends on ([`Dependency::Stage`]), and returns every stage's result.
/// `run` gets the stage and the results finished so far (its dependencies
/// among them). The first error is returned; stages not yet started then
/// never start, and running ones see [`Cancel::is_cancelled`]; so do they
/// when `cancel` is set from outside. A stage whose `run` panics fails
/// the build with a [`StagePanic`].
pub fn solve<T, E, F>(stages: &[Stage], cancel: &Cancel, run: F) -> Result<Finished<T>, E>
where
    T: Send + Sync,
    E: Send + From<StagePanic>,
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
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(stage, &inputs, cancel)
                }))
                .unwrap_or_else(|payload| {
                    Err(E::from(StagePanic {
                        stage: stage.index,
                        message: panic_message(&*payload),
                    }))
                });
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

    #[test]
    fn a_failing_build_does_not_cancel_another_sharing_its_interrupt_flag() {
        let interrupt = Arc::new(AtomicBool::new(false));
        let (a, b) = (
            Cancel::new(interrupt.clone()),
            Cancel::new(interrupt.clone()),
        );
        a.set();
        assert!(a.is_cancelled() && a.flag().load(Ordering::SeqCst) && !a.is_interrupted());
        assert!(!b.is_cancelled() && !interrupt.load(Ordering::SeqCst));
        interrupt.store(true, Ordering::SeqCst);
        assert!(b.is_cancelled() && b.is_interrupted());
        // Running steps poll the flag: the interrupt reaches it too.
        for _ in 0..500 {
            if b.flag().load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(b.flag().load(Ordering::SeqCst));
    }
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

    #[test]
    fn a_panicking_stage_fails_the_build_instead_of_hanging_its_dependents() {
        let stages = [stage(0, &[]), stage(1, &[0]), stage(2, &[])];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = solve(
                &stages,
                &Cancel::default(),
                |s, _: &Finished<()>, _| match s.index {
                    0 => panic!("an event sink broke"),
                    _ => Ok::<(), String>(()),
                },
            );
            let _ = tx.send(got);
        });
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the build hung on a panicked stage");
        let err = got.unwrap_err();
        assert!(
            err.contains("stage 0 stopped: kiln panicked (an event sink broke)"),
            "{err}"
        );
    }
}
