//! One resolver process per state directory. It holds a POSIX write lock
//! on `STATE/resolver.pid` while it runs, so the kernel (not a file's
//! contents) says whether one runs and which PID it has. A write of the
//! resolver's records [`wake`]s it: starts it when none runs, else sends
//! SIGHUP. It writes what it serves to `STATE/resolver.status` and its
//! messages to `STATE/resolver.log`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{PREFIX, Table};
use crate::error::{CapError, CapResult};
use crate::kv::KvStore;
use crate::kv::sqlite::Sqlite;

const LOCK: &str = "resolver.pid";
const STATUS: &str = "resolver.status";
const LOG: &str = "resolver.log";

/// The running resolver's hold on its state directory; dropping it lets go.
#[derive(Debug)]
pub struct Claim {
    _file: File,
}

fn whole_file(kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

fn open_lock(state: &Path) -> CapResult<File> {
    let path = state.join(LOCK);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CapError::io(&e, format!("opening {}", path.display())))
}

/// Become the state directory's resolver; `None` when another one is.
pub fn claim(state: &Path) -> CapResult<Option<Claim>> {
    let mut file = open_lock(state)?;
    match fcntl(&file, FcntlArg::F_SETLK(&whole_file(libc::F_WRLCK as libc::c_short))) {
        Ok(_) => {}
        Err(Errno::EAGAIN | Errno::EACCES) => return Ok(None),
        Err(e) => return Err(CapError::os(e, format!("locking {}", state.join(LOCK).display()))),
    }
    // The PID is for people reading the file; netsh asks the kernel.
    let _ = file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(Some(Claim { _file: file }))
}

/// The PID of the resolver serving `state`, if one runs (0 when it runs in
/// a PID namespace this process cannot see).
pub fn running(state: &Path) -> CapResult<Option<i32>> {
    if !state.join(LOCK).exists() {
        return Ok(None);
    }
    let file = open_lock(state)?;
    let mut probe = whole_file(libc::F_WRLCK as libc::c_short);
    fcntl(&file, FcntlArg::F_GETLK(&mut probe))
        .map_err(|e| CapError::os(e, format!("reading the lock of {}", state.join(LOCK).display())))?;
    Ok((probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid))
}

/// Tell the resolver its records changed, starting it if none runs.
pub fn wake(state: &Path) -> CapResult<()> {
    match running(state)? {
        // Never kill(0): that is this process group. The resolver's own check each second catches up.
        Some(pid) if pid <= 0 => Ok(()),
        Some(pid) => kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| CapError::os(e, "signalling the resolver")),
        None => spawn(state),
    }
}

/// Start `netsh dns serve` for `state`, detached from the caller's process
/// group, its output appended to the log.
fn spawn(state: &Path) -> CapResult<()> {
    let exe = std::env::current_exe().map_err(|e| CapError::io(&e, "finding the netsh binary"))?;
    let log_path = state.join(LOG);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| CapError::io(&e, format!("opening {}", log_path.display())))?;
    let err_log = log.try_clone().map_err(|e| CapError::io(&e, "duplicating the log file"))?;
    let mut child = Command::new(exe)
        .arg("--state-dir")
        .arg(state)
        .args(["--no-agent", "dns", "serve"])
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(|e| CapError::io(&e, "starting the resolver"))?;
    // Reap it if it exits while this process still runs (the agent does).
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Stop the resolver of `state` (SIGTERM) and wait up to `patience` for it
/// to go; its PID if one ran.
pub fn stop(state: &Path, patience: Duration) -> CapResult<Option<i32>> {
    let Some(pid) = running(state)? else { return Ok(None) };
    if pid <= 0 {
        return Err(CapError::Failed(
            "the resolver runs in a PID namespace this process cannot see; stop it there".into(),
        ));
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| CapError::os(e, format!("stopping resolver {pid}")))?;
    let started = Instant::now();
    while running(state)?.is_some() {
        if started.elapsed() > patience {
            return Err(CapError::Failed(format!("resolver {pid} did not stop within {patience:?}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(pid))
}

/// What the resolver last reported about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The store revision it serves.
    pub revision: u64,
    /// Addresses it answers on (port 53, UDP and TCP).
    pub listening: Vec<IpAddr>,
    /// Addresses it could not listen on, and why.
    pub failed: Vec<(IpAddr, String)>,
    /// Where other queries go.
    pub upstreams: Vec<SocketAddr>,
    /// Records it ignored because they do not parse.
    pub damaged: Vec<String>,
}

impl Report {
    /// Write the report where `status` reads it (replacing the old one whole).
    pub fn save(&self, state: &Path) -> std::io::Result<()> {
        let tmp = state.join(format!("{STATUS}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(tmp, state.join(STATUS))
    }
}

/// One zone as `netsh dns status` shows it.
#[derive(Debug, Serialize)]
pub struct ZoneStatus {
    pub zone: String,
    pub listen: IpAddr,
    pub clients: String,
    pub names: usize,
    /// Other names are asked upstream (false: an internal network's zone).
    pub forward: bool,
}

/// `netsh dns status`: whether the resolver runs, what it reported, and the
/// zones the store holds.
#[derive(Debug, Serialize)]
pub struct Status {
    pub pid: Option<i32>,
    pub report: Option<Report>,
    pub zones: Vec<ZoneStatus>,
    pub log: PathBuf,
}

/// Read the resolver's status for `state`.
pub fn status(state: &Path) -> CapResult<Status> {
    let pid = running(state)?;
    let report = match pid {
        Some(_) => std::fs::read(state.join(STATUS)).ok().and_then(|b| serde_json::from_slice(&b).ok()),
        None => None,
    };
    let zones = match state.join("kv.sqlite").exists() {
        true => {
            let table = Table::load(&Sqlite::open(&state.join("kv.sqlite"))?.list(PREFIX)?);
            let zone = |z: &super::Zone| ZoneStatus {
                zone: z.name.clone(),
                listen: z.listen,
                clients: z.clients.to_string(),
                names: table.names_in(&z.name),
                forward: z.forward,
            };
            table.zones().iter().map(zone).collect()
        }
        false => Vec::new(),
    };
    Ok(Status { pid, report, zones, log: state.join(LOG) })
}

impl Status {
    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut out = match (self.pid, &self.report) {
            (Some(pid), Some(r)) => format!(
                "resolver: running, pid {pid}, store revision {}, upstreams {}\n",
                r.revision,
                list(&r.upstreams)
            ),
            (Some(pid), None) => format!("resolver: starting, pid {pid}\n"),
            (None, _) => "resolver: not running (it starts with the first zone)\n".to_string(),
        };
        for z in &self.zones {
            let state = match &self.report {
                Some(r) if r.listening.contains(&z.listen) => "listening".to_string(),
                Some(r) => match r.failed.iter().find(|(a, _)| *a == z.listen) {
                    Some((_, why)) => format!("NOT listening: {why}"),
                    None => "pending".to_string(),
                },
                None => "not served".to_string(),
            };
            let internal = if z.forward { "" } else { " (internal: nothing forwarded)" };
            out.push_str(&format!(
                "  zone {} on {}:53 for {}: {} names{internal}, {state}\n",
                z.zone, z.listen, z.clients, z.names
            ));
        }
        if let Some(r) = &self.report {
            r.damaged.iter().for_each(|d| out.push_str(&format!("  ignored damaged record {d}\n")));
        }
        out
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    if addrs.is_empty() {
        return "none (other names fail)".into();
    }
    addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")
}
