//! The one error type every capability call returns.

use thiserror::Error;

/// Why a capability call failed; mirrors the WIT `types.error` variant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CapError {
    /// The user's grants do not allow the call.
    #[error("permission denied: {0}")]
    Denied(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object to create already exists.
    #[error("{0}")]
    Exists(String),
    /// An argument is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The kernel refused the call with an errno.
    #[error("{message} (errno {code})")]
    Os {
        /// The errno, positive.
        code: i32,
        /// What failed and the errno's description.
        message: String,
    },
    /// Something without an errno failed: a tool netsh drives exited
    /// non-zero, a reply was malformed, a helper thread died.
    #[error("{0}")]
    Failed(String),
    /// A request went out and no answer came back: it may or may not have
    /// taken effect (a key-value store that stopped answering mid-write).
    #[error("{0}")]
    Unanswered(String),
}

impl CapError {
    /// An OS error from an errno, with what was being done.
    pub fn os(errno: nix::errno::Errno, doing: impl std::fmt::Display) -> Self {
        CapError::Os { code: errno as i32, message: format!("{doing}: {}", errno.desc()) }
    }

    /// An error from an `io::Error`, with what was being done; keeps the errno when there is one.
    pub fn io(err: &std::io::Error, doing: impl std::fmt::Display) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::os(nix::errno::Errno::from_raw(code), doing),
            None => CapError::Failed(format!("{doing}: {err}")),
        }
    }
}

/// Result of a capability call.
pub type CapResult<T> = Result<T, CapError>;
