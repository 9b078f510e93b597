//! Stopping a run cleanly: Ctrl-C, the time limit or a caller going away
//! set a [`Stop`]; the run notices it only between host calls (at the next
//! call, or at the next epoch tick while the guest computes), so a change
//! that reached the kernel is always journaled with its outcome.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a run was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Ctrl-C, SIGTERM, or the caller hung up.
    Interrupted,
    /// The run's time limit passed.
    Timeout(Duration),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::Timeout(limit) => write!(f, "exceeded its time limit of {limit:?}"),
        }
    }
}

/// A request to stop, shared by everything that must notice it.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<Mutex<Option<StopReason>>>);

impl Stop {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StopReason>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask the run to stop; the first reason given wins.
    pub fn request(&self, reason: StopReason) {
        self.lock().get_or_insert(reason);
    }

    /// Why the run must stop, if it must.
    pub fn reason(&self) -> Option<StopReason> {
        *self.lock()
    }

    /// Forget an earlier request (the shell, before its next command).
    pub fn clear(&self) {
        *self.lock() = None;
    }
}

/// The trap a stopped guest ends with.
#[derive(Debug, Clone, Copy)]
pub struct StopTrap(pub StopReason);

impl std::fmt::Display for StopTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run stopped: {}", self.0)
    }
}

impl std::error::Error for StopTrap {}
