//! Front ends: thin layers that turn what a person or program typed into
//! engine calls and render what comes back. They know nothing of each other.

pub mod agent;
pub mod cli;
pub mod cni;
pub mod dns;
pub mod shell;
