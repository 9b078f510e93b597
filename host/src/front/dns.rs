//! `netsh dns status|stop|serve`: the resolver's lifecycle, read and driven
//! from the state directory (never through the agent: it is the same
//! directory either way).

use std::path::Path;
use std::time::Duration;

use netsh::console::Console;
use netsh::dns::{lifecycle, server};
use netsh::error::CapError;

use super::cli::DnsCommand;

/// Run one `netsh dns` command; its exit code.
pub fn main(state: &Path, command: &DnsCommand, console: &dyn Console) -> u8 {
    match run(state, command, console) {
        Ok(()) => 0,
        Err(e) => {
            console.errln(&format!("netsh dns: {e}"));
            1
        }
    }
}

fn run(state: &Path, command: &DnsCommand, console: &dyn Console) -> Result<(), CapError> {
    // Reading the status or stopping never creates the state directory.
    let trusted = match command {
        DnsCommand::Serve => netsh::trust::ensure_dir(state).map(drop),
        _ if !state.exists() => Ok(()),
        _ => netsh::trust::check(state),
    };
    trusted.map_err(|e| CapError::Failed(format!("state directory {}: {e}", state.display())))?;
    match command {
        DnsCommand::Status { json } => {
            let status = lifecycle::status(state)?;
            match json {
                true => console.outln(&serde_json::to_string_pretty(&status).unwrap_or_default()),
                false => console.out(status.text().as_bytes()),
            }
        }
        DnsCommand::Stop => match lifecycle::stop(state, Duration::from_secs(5))? {
            Some(pid) => console.outln(&format!("stopped resolver {pid}")),
            None => console.outln("no resolver was running"),
        },
        DnsCommand::Serve => server::serve(state)?,
    }
    Ok(())
}
