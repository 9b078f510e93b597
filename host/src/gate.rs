//! The choke point: every capability call, from a recipe or the CLI, passes
//! through [`Gate::call`] as a typed [`Op`] before it reaches the backend.
//! Permission checks, the audit log and the rollback journal belong here.

use std::sync::Arc;
use std::time::Instant;

use crate::backend::Backend;
use crate::error::CapResult;
use crate::ops::{Op, Reply};

/// Who is calling and which backend carries the calls out.
#[derive(Clone)]
pub struct Gate {
    backend: Arc<dyn Backend>,
    principal: String,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("principal", &self.principal).finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate for `principal` (a recipe's name and digest, or `cli`).
    pub fn new(backend: Arc<dyn Backend>, principal: impl Into<String>) -> Self {
        Gate { backend, principal: principal.into() }
    }

    /// Carry out one operation.
    pub async fn call(&self, op: Op) -> CapResult<Reply> {
        let started = Instant::now();
        let shown = tracing::enabled!(tracing::Level::DEBUG).then(|| op.to_string());
        let result = self.backend.apply(op).await;
        if let Some(shown) = shown {
            let outcome = match &result {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("error: {e}"),
            };
            tracing::debug!(principal = %self.principal, took_us = started.elapsed().as_micros() as u64, "{shown}: {outcome}");
        }
        result
    }

    /// Apply what the backend queued during the run (firewall batches).
    pub async fn flush(&self) -> CapResult<()> {
        self.backend.flush().await
    }
}
