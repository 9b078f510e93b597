//! `plan`: run a recipe against the in-memory model backend, seeded from the
//! kernel, and report the operations it would perform and the grants it needs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{Engine, EngineResult, GrantSpec, Recipe};
use crate::backend::model::{Model, Planned};
use crate::console::{Console, OutToErr};
use crate::gate::{Gate, PlanGrants};
use crate::policy::Policy;
use crate::runtime::{Call, Limits};

/// What a plan found.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub recipe: String,
    pub sha256: String,
    pub ops: Vec<Planned>,
    /// How many of the operations would change something.
    pub changes: usize,
    pub grants: PlanGrants,
    /// Why the recipe would fail, if it would.
    pub error: Option<String>,
}

impl Engine {
    /// Plan `target` with `args` under `grants`; the recipe's own output goes to stderr.
    pub async fn plan(
        &self,
        target: &Path,
        args: Vec<String>,
        grants: &GrantSpec,
        console: Arc<dyn Console>,
    ) -> EngineResult<PlanReport> {
        let policy = grants.load(&*console)?;
        let recipe = self.load(target, console.clone()).await?;
        self.plan_recipe(&recipe, &policy, Call::Run(args), Arc::new(OutToErr(console))).await
    }

    /// Plan an already loaded recipe.
    pub(crate) async fn plan_recipe(
        &self,
        recipe: &Recipe,
        policy: &Policy,
        call: Call,
        console: Arc<dyn Console>,
    ) -> EngineResult<PlanReport> {
        let kernel = self.kernel();
        let model = Arc::new(Model::new(kernel.clone(), kernel.firewall_kind()));
        let grants = Arc::new(Mutex::new(PlanGrants::default()));
        let gate = Gate::new(model.clone(), format!("plan {}", recipe.info.principal()))
            .with_policy(policy, Some(&recipe.info.sha256))
            .planning(grants.clone());
        let result = self.runtime()?.run(&recipe.loaded, call, gate, console, Limits::default()).await;
        let ops = model.planned();
        let grants = grants.lock().map(|g| g.clone()).unwrap_or_default();
        Ok(PlanReport {
            recipe: recipe.info.name.clone(),
            sha256: recipe.info.sha256.clone(),
            changes: ops.iter().filter(|p| p.changes).count(),
            ops,
            grants,
            error: result.err().map(|e| format!("{} would fail: {e}", recipe.loaded.path)),
        })
    }
}
