//! `netsh:host/log`: messages from a recipe to the user, on stderr.

use crate::runtime::RecipeState;
use crate::runtime::bindings::netsh::host::log::Host;

impl Host for RecipeState {
    async fn info(&mut self, message: String) {
        eprintln!("{message}");
    }

    async fn warn(&mut self, message: String) {
        eprintln!("warning: {message}");
    }
}
