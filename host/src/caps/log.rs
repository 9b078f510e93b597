//! `netsh:host/log`: messages from a recipe to the user, on the run's console.

use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::log::Host;

impl Host for RecipeState {
    async fn info(&mut self, message: String) -> wasmtime::Result<()> {
        self.console.errln(&message);
        Ok(())
    }

    async fn warn(&mut self, message: String) -> wasmtime::Result<()> {
        self.console.errln(&format!("warning: {message}"));
        Ok(())
    }
}
