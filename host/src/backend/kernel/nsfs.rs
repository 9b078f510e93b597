//! Named network namespaces as files: bind mounts under /run/netns (like
//! iproute2), /etc/netns/NAME files, and running code inside a namespace.
//!
//! `setns`/`unshare` affect only the calling thread, so work inside another
//! namespace always happens on a fresh std thread, never on a tokio worker.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
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

/// Open a namespace: a named one, or netsh's own for `None`.
pub fn open_ns(ns: &Ns) -> CapResult<File> {
    let path = match ns {
        Some(name) => ns_path(name),
        None => PathBuf::from("/proc/self/ns/net"),
    };
    File::open(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => not_found(ns.as_deref().unwrap_or("self")),
        _ => CapError::io(&e, format!("open {}", path.display())),
    })
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
    rx.await.map_err(|_| CapError::Os { code: 0, message: "namespace thread panicked".into() })?
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
fn create_mount_point(name: &str) -> CapResult<PathBuf> {
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
        self.sender()?.send(job).map_err(|_| CapError::Os { code: 0, message: "namespace thread is gone".into() })?;
        rx.await.map_err(|_| CapError::Os { code: 0, message: "namespace thread panicked".into() })?
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

/// `ip netns attach NAME PID`.
pub fn attach(name: &str, pid: u32) -> CapResult<()> {
    let source = format!("/proc/{pid}/ns/net");
    if !Path::new(&source).exists() {
        return Err(CapError::NotFound(format!("process {pid} does not exist")));
    }
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

/// Write /etc/netns/NAME/FILE atomically.
pub fn write_etc(name: &str, file: EtcFile, contents: &str) -> CapResult<()> {
    if !exists(name) {
        return Err(not_found(name));
    }
    let dir = Path::new(ETC_NETNS_DIR).join(name);
    fs::create_dir_all(&dir).map_err(|e| CapError::io(&e, format!("create {}", dir.display())))?;
    let target = dir.join(file.file_name());
    let tmp = dir.join(format!(".{}.netsh-tmp", file.file_name()));
    fs::write(&tmp, contents)
        .and_then(|()| fs::rename(&tmp, &target))
        .map_err(|e| CapError::io(&e, format!("write {}", target.display())))
}

/// Read /etc/netns/NAME/FILE, or the host's /etc/FILE.
pub fn read_etc(name: Option<&str>, file: EtcFile) -> CapResult<String> {
    let path = match name {
        Some(name) => Path::new(ETC_NETNS_DIR).join(name).join(file.file_name()),
        None => Path::new("/etc").join(file.file_name()),
    };
    fs::read_to_string(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CapError::NotFound(format!("{} does not exist", path.display())),
        _ => CapError::io(&e, format!("read {}", path.display())),
    })
}

/// Remove /etc/netns/NAME/FILE; a missing file is fine.
pub fn remove_etc(name: &str, file: EtcFile) -> CapResult<()> {
    let path = Path::new(ETC_NETNS_DIR).join(name).join(file.file_name());
    match fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(CapError::io(&e, format!("remove {}", path.display()))),
        _ => Ok(()),
    }
}
