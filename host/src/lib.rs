//! netsh: a WebAssembly-scriptable host networking shell.
//!
//! Recipes (WebAssembly components of the `netsh:host/recipe` world) ask for
//! capabilities through WIT imports; [`caps`] turns each call into a typed
//! [`ops::Op`], the [`gate::Gate`] is the one choke point it passes, and a
//! [`backend::Backend`] carries it out on the kernel. The [`engine`] holds
//! the workflows (run, plan, undo, the shell) that every front end shares.

pub mod agent;
pub mod audit;
pub mod backend;
pub mod caps;
pub mod console;
pub mod dns;
pub mod engine;
pub mod error;
pub mod firewall;
pub mod gate;
pub mod journal;
pub mod kv;
pub mod names;
pub mod ops;
pub mod plugins;
pub mod policy;
pub mod runtime;
pub mod sandbox;
pub mod secret;
pub mod stop;
pub mod trust;
pub mod units;
