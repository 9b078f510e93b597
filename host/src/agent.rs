//! The agent's protocol. A caller sends one [`Request`]: its command line
//! and what the command needs of the caller's process (working directory,
//! stdin, state directory, firewall backend, namespaces). The agent answers
//! [`FromAgent::Accepted`] or [`FromAgent::Declined`] (the caller then runs
//! the command itself), then streams the command's output and its exit code.
//! Frames are a 4-byte big-endian length and JSON.

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::console::Console;
use crate::firewall::FirewallKind;

/// Where `netsh agent` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netsh/agent.sock";

/// The largest frame either side accepts.
const MAX_FRAME: u32 = 64 << 20;

/// The namespaces a process lives in (device and inode of each
/// /proc/self/ns link): the agent serves only callers in its own, so that
/// `ip`-style names, /run/netns and PIDs mean the same on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub net: (u64, u64),
    pub mnt: (u64, u64),
    pub pid: (u64, u64),
}

impl Place {
    /// This process's namespaces.
    pub fn current() -> io::Result<Place> {
        let id = |kind: &str| std::fs::metadata(format!("/proc/self/ns/{kind}")).map(|m| (m.dev(), m.ino()));
        Ok(Place { net: id("net")?, mnt: id("mnt")?, pid: id("pid")? })
    }
}

/// One command for the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The command line, `netsh` first.
    pub argv: Vec<String>,
    /// Relative paths in `argv` are relative to this.
    pub cwd: PathBuf,
    /// The caller's stdin, for commands that read it (`batch -`, piped commands).
    pub stdin: Option<String>,
    pub state_dir: PathBuf,
    /// The user policy file the caller would read (it follows $HOME).
    pub user_policy: Option<PathBuf>,
    pub firewall: FirewallKind,
    /// The shared key-value store the caller names (`--kv`), if any.
    #[serde(default)]
    pub kv: Option<String>,
    pub place: Place,
    /// A CNI plugin call (`argv` is then only the program): its environment
    /// and the configuration (in `stdin`).
    pub cni: Option<Vec<(String, String)>>,
}

/// What a caller sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToAgent {
    Request(Box<Request>),
    /// Ctrl-C, SIGTERM or SIGHUP reached the caller: stop the command.
    Interrupt,
}

/// What the agent sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FromAgent {
    /// The agent runs the command; output follows.
    Accepted,
    /// The agent will not run this command (another state directory,
    /// firewall or namespace): the caller runs it itself.
    Declined(String),
    /// The caller may not use the agent (not root): a final answer.
    Refused(String),
    Out(String),
    Err(String),
    Exit(u8),
}

/// One message as a frame.
pub fn encode(message: &impl Serialize) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The body length a frame header announces, if acceptable.
pub fn body_len(header: [u8; 4]) -> io::Result<usize> {
    match u32::from_be_bytes(header) {
        len if len > MAX_FRAME => {
            Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is too large")))
        }
        len => Ok(len as usize),
    }
}

/// A frame's body as a message.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Write one frame.
pub fn write_frame(to: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    to.write_all(&encode(message)?)
}

/// Read one frame; `None` at the end of the stream.
pub fn read_frame<T: DeserializeOwned>(from: &mut impl Read) -> io::Result<Option<T>> {
    let mut header = [0u8; 4];
    match from.read_exact(&mut header) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let mut body = vec![0; body_len(header)?];
    from.read_exact(&mut body)?;
    decode(&body).map(Some)
}

/// How a command sent to the agent ended.
#[derive(Debug)]
pub enum Forwarded {
    /// The agent ran it; this is its exit code.
    Exit(u8),
    /// Run it in this process: no agent listens, or it declined (why).
    Local(Option<String>),
}

/// Send `request` to the agent at `socket` and relay its output to
/// `console`; `interrupts` is called once the agent accepted the command,
/// with a stream on which to send [`ToAgent::Interrupt`]. Before that, the
/// agent may still decline (nothing has run).
pub fn forward(
    socket: &Path,
    request: Request,
    console: &dyn Console,
    interrupts: impl FnOnce(UnixStream),
) -> io::Result<Forwarded> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
            return Ok(Forwarded::Local(None));
        }
        // Not root: the socket is closed to this process; running here says why best.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(Forwarded::Local(None)),
        Err(e) => return Err(e),
    };
    write_frame(&mut stream, &ToAgent::Request(Box::new(request)))?;
    let mut interrupts = Some(interrupts);
    loop {
        match read_frame::<FromAgent>(&mut stream)? {
            Some(FromAgent::Accepted) => {
                if let Some(watch) = interrupts.take() {
                    watch(stream.try_clone()?);
                }
            }
            Some(FromAgent::Declined(why)) if interrupts.is_some() => return Ok(Forwarded::Local(Some(why))),
            Some(FromAgent::Refused(why)) => {
                console.errln(&format!("netsh: error: {why}"));
                return Ok(Forwarded::Exit(1));
            }
            Some(FromAgent::Out(text)) => console.out(text.as_bytes()),
            Some(FromAgent::Err(text)) => console.err(text.as_bytes()),
            Some(FromAgent::Exit(code)) => return Ok(Forwarded::Exit(code)),
            None if interrupts.is_some() => {
                return Ok(Forwarded::Local(Some("the agent closed the connection".into())));
            }
            None => {
                console.errln(
                    "netsh: error: the agent went away before the command finished; `netsh runs` shows what it did",
                );
                return Ok(Forwarded::Exit(1));
            }
            Some(other) => return Err(unexpected(other)),
        }
    }
}

fn unexpected(frame: FromAgent) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected answer from the agent: {frame:?}"))
}

/// A console whose output goes to a caller as frames (the agent's side).
/// Writes queue in memory, so a slow reader never blocks a command.
#[derive(Debug)]
pub struct FrameConsole {
    queue: Mutex<Option<tokio::sync::mpsc::UnboundedSender<FromAgent>>>,
}

impl FrameConsole {
    /// A console feeding `queue`.
    pub fn new(queue: tokio::sync::mpsc::UnboundedSender<FromAgent>) -> FrameConsole {
        FrameConsole { queue: Mutex::new(Some(queue)) }
    }

    /// Queue a frame (dropped if the caller went away).
    pub fn send(&self, frame: FromAgent) {
        if let Some(queue) = &*self.queue.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = queue.send(frame);
        }
    }

    /// End the stream: nothing more will be queued.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Console for FrameConsole {
    fn out(&self, bytes: &[u8]) {
        self.send(FromAgent::Out(String::from_utf8_lossy(bytes).into_owned()));
    }

    fn err(&self, bytes: &[u8]) {
        self.send(FromAgent::Err(String::from_utf8_lossy(bytes).into_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_oversized_lengths() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &FromAgent::Out("hello\n".into())).unwrap();
        write_frame(&mut buf, &FromAgent::Exit(3)).unwrap();
        let mut reader = &buf[..];
        assert!(matches!(read_frame::<FromAgent>(&mut reader).unwrap(), Some(FromAgent::Out(t)) if t == "hello\n"));
        assert!(matches!(read_frame::<FromAgent>(&mut reader).unwrap(), Some(FromAgent::Exit(3))));
        assert!(read_frame::<FromAgent>(&mut reader).unwrap().is_none());
        let huge = (MAX_FRAME + 1).to_be_bytes();
        assert!(read_frame::<FromAgent>(&mut &huge[..]).is_err());
        let garbage = [0, 0, 0, 2, b'{', b'x'];
        assert!(read_frame::<FromAgent>(&mut &garbage[..]).is_err());
    }
}
