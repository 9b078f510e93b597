//! The SDK's error type: host errors plus usage errors, usable with `?`.

use std::fmt;

use crate::bindings::netsh::host::types::Error as HostError;

/// Why a recipe step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The user's grants do not allow the call.
    Denied(String),
    /// A named object does not exist.
    NotFound(String),
    /// The object to create already exists.
    Exists(String),
    /// An argument is malformed.
    Invalid(String),
    /// The kernel refused the call.
    Os { code: i32, message: String },
    /// Something without an errno failed in the host.
    Failed(String),
    /// The recipe was called with wrong arguments; the message says how to call it.
    Usage(String),
    /// Anything else a recipe wants to report.
    Other(String),
}

/// Result of a recipe step.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A free-form error.
    pub fn msg(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }

    /// Whether the error says something does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// Whether the error says something already exists.
    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Exists(_))
    }

    /// The CNI error code for this error: the spec's 3 for what does not
    /// exist and 7 for invalid input; netsh's own 100 for a denied
    /// permission, 101 for a failure, 102 for something already in use.
    pub fn cni_code(&self) -> u32 {
        match self {
            Error::NotFound(_) => 3,
            Error::Invalid(_) | Error::Usage(_) => 7,
            Error::Denied(_) => 100,
            Error::Os { .. } | Error::Failed(_) | Error::Other(_) => 101,
            Error::Exists(_) => 102,
        }
    }

    #[doc(hidden)]
    pub fn into_cni_error(self) -> crate::bindings::CniError {
        crate::bindings::CniError { code: self.cni_code(), msg: self.to_string(), details: String::new() }
    }

    #[doc(hidden)]
    pub fn into_run_error(self) -> crate::bindings::RunError {
        match self {
            Error::Usage(m) => crate::bindings::RunError::Usage(m),
            other => crate::bindings::RunError::Failed(other.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied(m) => write!(f, "permission denied: {m}"),
            Error::NotFound(m) | Error::Exists(m) | Error::Invalid(m) | Error::Failed(m) | Error::Other(m) => {
                f.write_str(m)
            }
            Error::Os { code, message } => write!(f, "{message} (errno {code})"),
            Error::Usage(m) => write!(f, "usage: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Denied(m) => Error::Denied(m),
            HostError::NotFound(m) => Error::NotFound(m),
            HostError::Exists(m) => Error::Exists(m),
            HostError::Invalid(m) => Error::Invalid(m),
            HostError::Os(os) => Error::Os { code: os.code, message: os.message },
            HostError::Failed(m) => Error::Failed(m),
        }
    }
}
