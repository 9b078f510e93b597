//! Named network namespaces as files: bind mounts under /run/netns (like
//! iproute2), /etc/netns/NAME files, and running code inside a namespace.
//!
//! `setns`/`unshare` affect only the calling thread, so work inside another
//! namespace always happens on a fresh std thread, never on a tokio worker.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, mpsc};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{CapError, CapResult};
use crate::ops::{EtcFile, Ns};

/// Where named namespaces live.
pub const NETNS_DIR: &str = "/run/netns";
/// Where per-namespace /etc files live.
pub const ETC_NETNS_DIR: &str = "/etc/netns";

/// Path of a named namespace.
pub fn ns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// A namespace's identity: the device and inode of its nsfs file.
pub(super) type NsId = (u64, u64);

pub(super) fn ns_id(meta: &fs::Metadata) -> NsId {
    (meta.dev(), meta.ino())
}

/// The identity of netsh's own namespace (that of its main thread).
pub(super) fn own_ns() -> CapResult<NsId> {
    static OWN: OnceLock<Result<NsId, CapError>> = OnceLock::new();
    OWN.get_or_init(|| {
        fs::metadata("/proc/self/ns/net").map(|m| ns_id(&m)).map_err(|e| CapError::io(&e, "stat own namespace"))
    })
    .clone()
}

pub(super) fn host_alias(what: &str) -> CapError {
    CapError::Denied(format!(
        "{what} is netsh's own network namespace under another name; a grant on it would reach the host's interfaces"
    ))
}

/// Open a namespace: a named one, or netsh's own for `None`. A name that
/// leads to netsh's own namespace is refused: grants on named namespaces
/// must never reach the host's interfaces.
pub fn open_ns(ns: &Ns) -> CapResult<File> {
    let path = match ns {
        Some(name) => ns_path(name),
        None => PathBuf::from("/proc/self/ns/net"),
    };
    let file = File::open(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => not_found(ns.as_deref().unwrap_or("self")),
        _ => CapError::io(&e, format!("open {}", path.display())),
    })?;
    if let Some(name) = ns {
        let meta = file.metadata().map_err(|e| CapError::io(&e, format!("stat {}", path.display())))?;
        if ns_id(&meta) == own_ns()? {
            return Err(host_alias(&format!("namespace {name}")));
        }
    }
    Ok(file)
}

fn not_found(name: &str) -> CapError {
    CapError::NotFound(format!("namespace {name} does not exist (see `ip netns list`)"))
}

/// Run `f` inside the namespace `ns`: right here for netsh's own (the
/// calling thread is already in it), else on a fresh thread that enters it.
pub async fn in_netns<T, F>(ns: &Ns, f: F) -> CapResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> CapResult<T> + Send + 'static,
{
    if ns.is_none() {
        return f();
    }
    let file = open_ns(ns)?;
    on_thread(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| CapError::os(e, "enter namespace"))?;
        f()
    })
    .await
}

/// Run `f` on a fresh std thread and await its result.
pub async fn on_thread<T, F>(f: F) -> CapResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> CapResult<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netsh-ns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| CapError::io(&e, "spawn namespace thread"))?;
    rx.await.map_err(|_| CapError::Failed("namespace thread panicked".into()))?
}

/// Make /run/netns a shared mount point, as iproute2 does, so that a
/// namespace deleted here is unmounted in every mount namespace too.
fn ensure_netns_dir() -> CapResult<()> {
    static READY: OnceLock<Result<(), CapError>> = OnceLock::new();
    READY
        .get_or_init(|| {
            fs::create_dir_all(NETNS_DIR).map_err(|e| CapError::io(&e, format!("create {NETNS_DIR}")))?;
            let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
            match mount(None::<&str>, NETNS_DIR, Some("none"), shared, None::<&str>) {
                Ok(()) => Ok(()),
                Err(Errno::EINVAL) => {
                    mount(Some(NETNS_DIR), NETNS_DIR, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                        .and_then(|()| mount(None::<&str>, NETNS_DIR, Some("none"), shared, None::<&str>))
                        .map_err(|e| CapError::os(e, format!("make {NETNS_DIR} a shared mount")))
                }
                Err(e) => Err(CapError::os(e, format!("make {NETNS_DIR} a shared mount"))),
            }
        })
        .clone()
}

/// Create the mount-point file for a new named namespace; fails if it exists.
pub(super) fn create_mount_point(name: &str) -> CapResult<PathBuf> {
    ensure_netns_dir()?;
    let path = ns_path(name);
    OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => CapError::Exists(format!("namespace {name} already exists")),
        _ => CapError::io(&e, format!("create {}", path.display())),
    })?;
    Ok(path)
}

type Job = Box<dyn FnOnce() + Send>;

/// A long-lived thread that creates namespaces: each job unshares it into a
/// fresh namespace, which saves a thread start and exit per namespace.
#[derive(Debug, Default)]
pub struct Creator {
    jobs: OnceLock<Mutex<mpsc::Sender<Job>>>,
}

impl Creator {
    fn sender(&self) -> CapResult<mpsc::Sender<Job>> {
        if self.jobs.get().is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let home = File::open("/proc/thread-self/ns/net").map_err(|e| CapError::io(&e, "open own namespace"))?;
            std::thread::Builder::new()
                .name("netsh-netns".into())
                .spawn(move || {
                    for job in rx {
                        job();
                        // Leave the namespace just made: a thread inside it would keep it alive.
                        if setns(home.as_fd(), CloneFlags::CLONE_NEWNET).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| CapError::io(&e, "spawn namespace thread"))?;
            let _ = self.jobs.set(Mutex::new(tx));
        }
        let jobs = self.jobs.get().expect("set above").lock().unwrap_or_else(|p| p.into_inner());
        Ok(jobs.clone())
    }

    async fn run<T, F>(&self, f: F) -> CapResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> CapResult<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.sender()?.send(job).map_err(|_| CapError::Failed("namespace thread is gone".into()))?;
        rx.await.map_err(|_| CapError::Failed("namespace thread panicked".into()))?
    }
}

/// `ip netns add NAME`. Runs `then` inside the new namespace before returning
/// (used to open its netlink socket without a second setns).
pub async fn create<T, F>(creator: &Creator, name: &str, then: F) -> CapResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> CapResult<T> + Send + 'static,
{
    let path = create_mount_point(name)?;
    let cleanup = path.clone();
    let result = creator
        .run(move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| CapError::os(e, "unshare network namespace"))?;
            mount(Some("/proc/thread-self/ns/net"), &path, Some("none"), MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| CapError::os(e, format!("bind-mount {}", path.display())))?;
            then()
        })
        .await;
    if result.is_err() {
        let _ = umount2(&cleanup, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&cleanup);
    }
    result
}

/// The identity of process `pid`'s namespace.
fn pid_ns(pid: u32) -> CapResult<NsId> {
    let source = format!("/proc/{pid}/ns/net");
    match fs::metadata(&source) {
        Ok(meta) => Ok(ns_id(&meta)),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(CapError::NotFound(format!("process {pid} does not exist"))),
        Err(e) => Err(CapError::io(&e, format!("stat {source}"))),
    }
}

/// `ip netns identify PID`: the names of the process's namespace (none for
/// an unnamed one). Refused for netsh's own, which names cannot reach.
pub fn identify(pid: u32) -> CapResult<Vec<String>> {
    let target = pid_ns(pid)?;
    if target == own_ns()? {
        return Err(host_alias(&format!("the namespace of process {pid}")));
    }
    Ok(list()?.into_iter().filter(|n| fs::metadata(ns_path(n)).is_ok_and(|m| ns_id(&m) == target)).collect())
}

/// `ip netns attach NAME PID`. Refused when the process shares netsh's own
/// namespace, or one that already has a name (a second name is made with
/// `netns alias`, which records it so that grants must cover both).
pub fn attach(name: &str, pid: u32) -> CapResult<()> {
    if let Some(other) = identify(pid)?.first() {
        return Err(CapError::Exists(format!(
            "process {pid}'s namespace is already named {other}; use that name, or `netns alias {name} {other}`"
        )));
    }
    let source = format!("/proc/{pid}/ns/net");
    let path = create_mount_point(name)?;
    mount(Some(source.as_str()), &path, Some("none"), MsFlags::MS_BIND, None::<&str>).map_err(|e| {
        let _ = fs::remove_file(&path);
        CapError::os(e, format!("bind-mount {source}"))
    })
}

/// `ip netns del NAME`: unmount, remove the file and /etc/netns/NAME.
pub fn delete(name: &str) -> CapResult<()> {
    let path = ns_path(name);
    if !path.exists() {
        return Err(not_found(name));
    }
    super::aliases::forget(name)?;
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(CapError::os(e, format!("unmount {}", path.display()))),
    }
    fs::remove_file(&path).map_err(|e| CapError::io(&e, format!("remove {}", path.display())))?;
    match fs::remove_dir_all(Path::new(ETC_NETNS_DIR).join(name)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(CapError::io(&e, "remove /etc/netns files")),
        _ => Ok(()),
    }
}

/// `ip netns list`, sorted by name.
pub fn list() -> CapResult<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CapError::io(&e, format!("read {NETNS_DIR}"))),
    };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    Ok(names)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    ns_path(name).exists()
}

/// /etc/netns/NAME, which must be a real directory (never a link that
/// would send writes elsewhere); created when `create`.
fn etc_dir(name: &str, create: bool) -> CapResult<PathBuf> {
    let dir = Path::new(ETC_NETNS_DIR).join(name);
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => {
            Err(CapError::Invalid(format!("{} is not a directory; netsh will not write through it", dir.display())))
        }
        Err(e) if e.kind() == ErrorKind::NotFound && create => {
            fs::create_dir_all(&dir).map_err(|e| CapError::io(&e, format!("create {}", dir.display())))?;
            Ok(dir)
        }
        Err(e) => Err(CapError::io(&e, format!("stat {}", dir.display()))),
    }
}

/// Write /etc/netns/NAME/FILE atomically (a new file renamed into place).
pub fn write_etc(name: &str, file: EtcFile, contents: &str) -> CapResult<()> {
    if !exists(name) {
        return Err(not_found(name));
    }
    let dir = etc_dir(name, true)?;
    let target = dir.join(file.file_name());
    let tmp = dir.join(format!(".{}.netsh-tmp", file.file_name()));
    let _ = fs::remove_file(&tmp);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .and_then(|()| fs::rename(&tmp, &target))
        .map_err(|e| CapError::io(&e, format!("write {}", target.display())))
}

/// Read /etc/netns/NAME/FILE, or the host's /etc/FILE.
pub fn read_etc(name: Option<&str>, file: EtcFile) -> CapResult<String> {
    let path = match name {
        Some(name) => etc_dir(name, false)
            .map_err(|e| match e {
                CapError::Os { code, .. } if code == nix::libc::ENOENT => {
                    CapError::NotFound(format!("/etc/netns/{name}/{} does not exist", file.file_name()))
                }
                other => other,
            })?
            .join(file.file_name()),
        None => Path::new("/etc").join(file.file_name()),
    };
    fs::read_to_string(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CapError::NotFound(format!("{} does not exist", path.display())),
        _ => CapError::io(&e, format!("read {}", path.display())),
    })
}

/// Remove /etc/netns/NAME/FILE; a missing file is fine.
pub fn remove_etc(name: &str, file: EtcFile) -> CapResult<()> {
    let path = match etc_dir(name, false) {
        Ok(dir) => dir.join(file.file_name()),
        Err(CapError::Os { code, .. }) if code == nix::libc::ENOENT => return Ok(()),
        Err(e) => return Err(e),
    };
    match fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(CapError::io(&e, format!("remove {}", path.display()))),
        _ => Ok(()),
    }
}

/// Where shared hosts files live: one per group (a network), pointed at by
/// each member's /etc/netns/NAME/hosts, so a member joining or leaving is
/// one line written, not one file per member.
pub const SHARED_HOSTS_DIR: &str = "/etc/netns/.hosts";

const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

fn shared_hosts(group: &str) -> CapResult<PathBuf> {
    crate::names::check_netns(group)?;
    let dir = Path::new(SHARED_HOSTS_DIR);
    fs::create_dir_all(dir).map_err(|e| CapError::io(&e, format!("create {SHARED_HOSTS_DIR}")))?;
    Ok(dir.join(group))
}

/// Open (creating with the localhost lines) and lock a group's hosts file.
fn lock_hosts(path: &Path) -> CapResult<nix::fcntl::Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| CapError::io(&e, format!("open {}", path.display())))?;
    let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| CapError::os(e, format!("lock {}", path.display())))?;
    if file.metadata().map_err(|e| CapError::io(&e, format!("stat {}", path.display())))?.len() == 0 {
        file.write_all(HOSTS_HEADER.as_bytes()).map_err(|e| CapError::io(&e, format!("write {}", path.display())))?;
    }
    Ok(file)
}

fn read_locked(file: &mut File, path: &Path) -> CapResult<String> {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.rewind()
        .and_then(|_| file.read_to_string(&mut text))
        .map_err(|e| CapError::io(&e, format!("read {}", path.display())))?;
    Ok(text)
}

/// Append `line` to group's hosts file; false if it is there already.
pub fn hosts_add(group: &str, line: &str) -> CapResult<bool> {
    check_hosts_line(line)?;
    let path = shared_hosts(group)?;
    let mut file = lock_hosts(&path)?;
    if read_locked(&mut file, &path)?.lines().any(|l| l == line) {
        return Ok(false);
    }
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| CapError::io(&e, format!("write {}", path.display())))?;
    Ok(true)
}

/// Remove `line` from group's hosts file (rewritten in place, so bind mounts
/// of it see the change); the file goes with its last member. False if absent.
pub fn hosts_remove(group: &str, line: &str) -> CapResult<bool> {
    let path = shared_hosts(group)?;
    if !path.exists() {
        return Ok(false);
    }
    let mut file = lock_hosts(&path)?;
    let text = read_locked(&mut file, &path)?;
    if !text.lines().any(|l| l == line) {
        return Ok(false);
    }
    let kept: String = text.lines().filter(|l| *l != line).map(|l| format!("{l}\n")).collect();
    if kept == HOSTS_HEADER {
        fs::remove_file(&path).map_err(|e| CapError::io(&e, format!("remove {}", path.display())))?;
        return Ok(true);
    }
    file.set_len(0)
        .and_then(|()| file.write_all(kept.as_bytes()))
        .map_err(|e| CapError::io(&e, format!("rewrite {}", path.display())))?;
    Ok(true)
}

/// Point /etc/netns/NAME/hosts at group's shared hosts file.
pub fn hosts_share(name: &str, group: &str) -> CapResult<()> {
    if !exists(name) {
        return Err(not_found(name));
    }
    drop(lock_hosts(&shared_hosts(group)?)?);
    let dir = etc_dir(name, true)?;
    let tmp = dir.join(".hosts.netsh-link");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("../.hosts/{group}"), &tmp)
        .and_then(|()| fs::rename(&tmp, dir.join("hosts")))
        .map_err(|e| CapError::io(&e, format!("link {}/hosts", dir.display())))
}

/// A hosts line: printable, one line, not too long.
fn check_hosts_line(line: &str) -> CapResult<()> {
    if line.is_empty() || line.len() > 1024 || line.contains(['\n', '\r', '\0']) {
        return Err(CapError::Invalid(format!("hosts line {line:?} must be one line of at most 1024 bytes")));
    }
    Ok(())
}
