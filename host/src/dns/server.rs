//! The resolver process (`netsh dns serve`): port 53, UDP and TCP (for
//! answers too big for a datagram), on every zone's listen address, answers from the [`Table`], other queries forwarded to
//! the nameservers of this machine's /etc/resolv.conf. It rereads the store
//! on SIGHUP and whenever its revision changes (checked each second), binds
//! and unbinds addresses as zones come and go, and exits after the last (or
//! when the store itself is removed).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, setsockopt, socket, sockopt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::lifecycle::{self, Claim, Report};
use super::{Answer, PREFIX, Table};
use crate::error::{CapError, CapResult};
use crate::kv::KvStore;
use crate::kv::sqlite::Sqlite;

/// Time to live of local answers, in seconds: containers come and go.
const TTL: u32 = 10;
/// How long one upstream gets to answer a forwarded query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight at once; more are answered SERVFAIL.
const MAX_FORWARDS: usize = 512;
/// TCP connections served at once; more are closed at once.
const MAX_TCP: usize = 64;
/// How long a TCP connection may stay open.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often the store's revision is checked without a SIGHUP.
const POLL: Duration = Duration::from_secs(1);

/// Serve the zones of `state` until none is left or SIGTERM/SIGINT.
pub fn serve(state: &Path) -> CapResult<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CapError::io(&e, "starting the resolver's runtime"))?;
    runtime.block_on(async {
        // Signal handlers first: a writer may SIGHUP as soon as the claim is visible.
        let signals = Signals::new()?;
        let Some(claim) = lifecycle::claim(state)? else {
            eprintln!("netsh dns: another resolver serves {}", state.display());
            return Ok(());
        };
        let store = Sqlite::open(&state.join("kv.sqlite"))?;
        let mut resolver = Resolver::new(state.to_path_buf(), store, claim);
        resolver.run(signals).await
    })
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> CapResult<Signals> {
        let on = |kind| signal(kind).map_err(|e| CapError::io(&e, "installing the resolver's signal handlers"));
        Ok(Signals {
            hup: on(SignalKind::hangup())?,
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
        })
    }
}

/// What every listening task reads.
#[derive(Clone)]
struct Shared {
    table: Arc<RwLock<Arc<Table>>>,
    upstreams: Arc<RwLock<Vec<SocketAddr>>>,
    forwards: Arc<Semaphore>,
}

impl Shared {
    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn upstreams(&self) -> Vec<SocketAddr> {
        self.upstreams.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Resolver {
    state: PathBuf,
    store: Sqlite,
    claim: Option<Claim>,
    shared: Shared,
    /// The UDP and TCP tasks of each address.
    listeners: HashMap<IpAddr, [JoinHandle<()>; 2]>,
    report: Report,
    revision: Option<u64>,
}

impl Resolver {
    fn new(state: PathBuf, store: Sqlite, claim: Claim) -> Resolver {
        let shared = Shared {
            table: Arc::default(),
            upstreams: Arc::default(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        };
        Resolver {
            state,
            store,
            claim: Some(claim),
            shared,
            listeners: HashMap::new(),
            report: Report::default(),
            revision: None,
        }
    }

    async fn run(&mut self, mut signals: Signals) -> CapResult<()> {
        eprintln!("netsh dns: resolver {} serving {}", std::process::id(), self.state.display());
        let mut tick = tokio::time::interval(POLL);
        loop {
            let forced = tokio::select! {
                _ = signals.hup.recv() => true,
                _ = tick.tick() => false,
                _ = signals.term.recv() => break,
                _ = signals.int.recv() => break,
            };
            if !self.reload(forced)? {
                break;
            }
        }
        eprintln!("netsh dns: resolver {} stopped", std::process::id());
        Ok(())
    }

    /// Reread the store if it changed (or `forced`); false when nothing is left to serve.
    fn reload(&mut self, forced: bool) -> CapResult<bool> {
        if !self.state.join("kv.sqlite").exists() {
            eprintln!("netsh dns: the store under {} is gone; stopping", self.state.display());
            return Ok(false);
        }
        let revision = self.store.revision()?;
        if !forced && self.revision == Some(revision) {
            if self.refresh_upstreams() {
                self.save_report();
            }
            return Ok(true);
        }
        self.revision = Some(revision);
        let mut table = Table::load(&self.store.list(PREFIX)?);
        if table.zones().is_empty() {
            match self.retire()? {
                Some(again) => table = again,
                None => return Ok(false),
            }
        }
        self.rebind(&table);
        self.report.revision = revision;
        self.report.damaged = table.damaged.clone();
        *self.shared.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.refresh_upstreams();
        self.save_report();
        Ok(true)
    }

    /// The last zone went: let go of the claim, then look once more, so a
    /// zone written meanwhile is served either by this process or by the
    /// one its writer starts. The table to go on with, or `None` to exit.
    fn retire(&mut self) -> CapResult<Option<Table>> {
        self.claim = None;
        let table = Table::load(&self.store.list(PREFIX)?);
        if table.zones().is_empty() {
            return Ok(None);
        }
        self.claim = lifecycle::claim(&self.state)?;
        Ok(self.claim.as_ref().map(|_| table))
    }

    /// Listen on the table's addresses and on no others.
    fn rebind(&mut self, table: &Table) {
        let wanted = table.listen_addrs();
        self.listeners.retain(|addr, tasks| {
            let keep = wanted.contains(addr);
            if !keep {
                tasks.iter().for_each(JoinHandle::abort);
            }
            keep
        });
        self.report.failed.clear();
        for addr in wanted {
            if self.listeners.contains_key(&addr) {
                continue;
            }
            match bind_udp(addr).and_then(|udp| Ok((udp, bind_tcp(addr)?))) {
                Ok((udp, tcp)) => {
                    let udp = tokio::spawn(listen(Arc::new(udp), addr, self.shared.clone()));
                    let tcp = tokio::spawn(listen_tcp(tcp, addr, self.shared.clone()));
                    self.listeners.insert(addr, [udp, tcp]);
                }
                Err(e) => {
                    eprintln!("netsh dns: cannot listen on {addr}:53: {e}");
                    self.report.failed.push((addr, e.to_string()));
                }
            }
        }
        let mut listening: Vec<IpAddr> = self.listeners.keys().copied().collect();
        listening.sort();
        self.report.listening = listening;
    }

    /// Reread /etc/resolv.conf (cheap); whether the upstreams changed.
    fn refresh_upstreams(&mut self) -> bool {
        let own = &self.report.listening;
        let upstreams: Vec<SocketAddr> = std::fs::read_to_string("/etc/resolv.conf")
            .map(|text| nameservers(&text).into_iter().filter(|a| !own.contains(&a.ip())).collect())
            .unwrap_or_default();
        if upstreams == self.report.upstreams {
            return false;
        }
        self.report.upstreams = upstreams.clone();
        *self.shared.upstreams.write().unwrap_or_else(|p| p.into_inner()) = upstreams;
        true
    }

    /// Write the report `netsh dns status` reads.
    fn save_report(&self) {
        if let Err(e) = self.report.save(&self.state) {
            eprintln!("netsh dns: cannot write the status file: {e}");
        }
    }
}

/// The `nameserver` addresses of a resolv.conf, on port 53.
fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["nameserver", ip, ..] => ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)),
            _ => None,
        })
        .collect()
}

/// A UDP socket on `addr`:53.
fn bind_udp(addr: IpAddr) -> std::io::Result<UdpSocket> {
    let fd = bound(addr, SockType::Datagram)?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// A TCP listener on `addr`:53.
fn bind_tcp(addr: IpAddr) -> std::io::Result<TcpListener> {
    let fd = bound(addr, SockType::Stream)?;
    nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(128)?)?;
    TcpListener::from_std(std::net::TcpListener::from(fd))
}

/// A socket of `kind` bound to `addr`:53, even before the address is up
/// (IP_FREEBIND): a bridge may be recreated under a live zone.
fn bound(addr: IpAddr, kind: SockType) -> std::io::Result<std::os::fd::OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, kind, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    match addr {
        IpAddr::V4(ip) => {
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(std::net::SocketAddrV4::new(ip, 53)))?
        }
        IpAddr::V6(ip) => {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            let sa = SockaddrIn6::from(std::net::SocketAddrV6::new(ip, 53, 0, 0));
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &sa)?
        }
    }
    Ok(fd)
}

/// Answer TCP connections arriving at `listen` until aborted, a bounded
/// number at a time.
async fn listen_tcp(listener: TcpListener, listen: IpAddr, shared: Shared) {
    let connections = Arc::new(Semaphore::new(MAX_TCP));
    loop {
        let Ok((stream, client)) = listener.accept().await else { continue };
        let Ok(permit) = connections.clone().try_acquire_owned() else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TCP_IDLE, serve_tcp(stream, listen, client.ip(), &shared)).await;
            drop(permit);
        });
    }
}

/// Length-prefixed queries on one connection, each answered in turn.
async fn serve_tcp(mut stream: TcpStream, listen: IpAddr, client: IpAddr, shared: &Shared) -> std::io::Result<()> {
    loop {
        let Some(query) = read_frame(&mut stream).await? else { return Ok(()) };
        let answer = match respond(&shared.table(), listen, client, &query) {
            Response::Now(bytes) => bytes,
            Response::Forward => forward_tcp(&query, &shared.upstreams()).await.unwrap_or_else(|| servfail(&query)),
            Response::Ignore => return Ok(()),
        };
        write_frame(&mut stream, &answer).await?;
    }
}

/// One DNS-over-TCP message (RFC 1035 4.2.2: a two-byte length first); `None` at the end.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

async fn write_frame(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| std::io::Error::other("message too long"))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(message).await
}

/// Ask each upstream in turn over TCP; the first answer with the query's id.
async fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for upstream in upstreams {
        let exchange = async {
            let mut stream = TcpStream::connect(upstream).await?;
            write_frame(&mut stream, query).await?;
            read_frame(&mut stream).await
        };
        if let Ok(Ok(Some(answer))) = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await
            && answer.get(..2) == Some(id)
        {
            return Some(answer);
        }
    }
    None
}

/// Answer queries arriving at `listen` until aborted.
async fn listen(socket: Arc<UdpSocket>, listen: IpAddr, shared: Shared) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, client)) = socket.recv_from(&mut buf).await else { continue };
        let query = &buf[..len];
        match respond(&shared.table(), listen, client.ip(), query) {
            Response::Now(bytes) => {
                let _ = socket.send_to(&bytes, client).await;
            }
            Response::Forward => match shared.forwards.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (socket, query, upstreams) = (socket.clone(), query.to_vec(), shared.upstreams());
                    tokio::spawn(async move {
                        let answer = forward(&query, &upstreams).await.unwrap_or_else(|| servfail(&query));
                        let _ = socket.send_to(&answer, client).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    let _ = socket.send_to(&servfail(query), client).await;
                }
            },
            Response::Ignore => {}
        }
    }
}

/// What to do with one datagram.
#[derive(Debug, PartialEq, Eq)]
enum Response {
    /// Send this answer.
    Now(Vec<u8>),
    /// Ask upstream.
    Forward,
    /// Not a query: no answer.
    Ignore,
}

/// Answer `query` from `client` (arriving at `listen`) from the table.
fn respond(table: &Table, listen: IpAddr, client: IpAddr, query: &[u8]) -> Response {
    let Ok(request) = Message::from_vec(query) else { return Response::Ignore };
    if request.metadata.message_type != MessageType::Query {
        return Response::Ignore;
    }
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(request.queries.iter().cloned());
    let [question] = request.queries.as_slice() else {
        return finish(reply, ResponseCode::FormErr);
    };
    if request.metadata.op_code != OpCode::Query {
        return finish(reply, ResponseCode::NotImp);
    }
    let qname = question.name().clone();
    let text = qname.to_ascii();
    let text = text.trim_end_matches('.');
    let answer = match (question.query_type(), reverse_addr(&qname)) {
        (RecordType::PTR, Some(addr)) => table.reverse(listen, client, addr),
        _ => table.lookup(listen, client, text),
    };
    match answer {
        Answer::Forward => return Response::Forward,
        Answer::Refused => return finish(reply, ResponseCode::Refused),
        Answer::NxDomain => {
            reply.metadata.authoritative = true;
            return finish(reply, ResponseCode::NXDomain);
        }
        Answer::Addrs(addrs) => {
            for addr in addrs {
                let rdata = match (question.query_type(), addr) {
                    (RecordType::A | RecordType::ANY, IpAddr::V4(ip)) => RData::A(A(ip)),
                    (RecordType::AAAA | RecordType::ANY, IpAddr::V6(ip)) => RData::AAAA(AAAA(ip)),
                    _ => continue,
                };
                reply.add_answer(Record::from_rdata(qname.clone(), TTL, rdata));
            }
        }
        Answer::Ptr(name) => match Name::from_ascii(format!("{name}.")) {
            Ok(target) => {
                reply.add_answer(Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(target))));
            }
            Err(_) => return finish(reply, ResponseCode::ServFail),
        },
    }
    reply.metadata.authoritative = true;
    finish(reply, ResponseCode::NoError)
}

fn finish(mut reply: Message, code: ResponseCode) -> Response {
    reply.metadata.response_code = code;
    reply.to_vec().map(Response::Now).unwrap_or(Response::Ignore)
}

/// The address a full reverse name (`4.3.2.1.in-addr.arpa.`) stands for.
fn reverse_addr(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// SERVFAIL for `query` (when no upstream answered).
fn servfail(query: &[u8]) -> Vec<u8> {
    let Ok(request) = Message::from_vec(query) else { return Vec::new() };
    let mut reply = Message::error_msg(request.metadata.id, request.metadata.op_code, ResponseCode::ServFail);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(request.queries);
    reply.to_vec().unwrap_or_default()
}

/// Ask each upstream in turn; the first answer with the query's id.
async fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for upstream in upstreams {
        let local: SocketAddr = if upstream.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let Ok(socket) = UdpSocket::bind(local).await else { continue };
        if socket.connect(upstream).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        if let Ok(Ok(len)) = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf)).await
            && buf.get(..2) == Some(id)
        {
            buf.truncate(len);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Entry;
    use hickory_proto::op::Query;

    fn table() -> Table {
        let entry = |key: &str, value: &str| Entry { key: format!("{PREFIX}{key}"), value: value.into(), version: 1 };
        Table::load(&[
            entry("zone/front", "listen=10.1.0.1 clients=10.1.0.0/24"),
            entry("name/front/c1/10.1.0.2", "ptr"),
            entry("name/front/web/10.1.0.2", "alias"),
        ])
    }

    fn ask(name: &str, kind: RecordType, client: &str) -> Response {
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        respond(&table(), "10.1.0.1".parse().unwrap(), client.parse().unwrap(), &query.to_vec().unwrap())
    }

    fn decoded(response: Response) -> Message {
        match response {
            Response::Now(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn answers_names_aliases_and_reverse_lookups() {
        let reply = decoded(ask("web.front.", RecordType::A, "10.1.0.3"));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers[0].data, RData::A(A("10.1.0.2".parse().unwrap())));
        let reply = decoded(ask("c1.", RecordType::AAAA, "10.1.0.3"));
        assert_eq!((reply.metadata.response_code, reply.answers.len()), (ResponseCode::NoError, 0));
        let reverse = Name::from("10.1.0.2".parse::<IpAddr>().unwrap());
        let reply = decoded(ask(&reverse.to_ascii(), RecordType::PTR, "10.1.0.3"));
        assert_eq!(reply.answers[0].data, RData::PTR(PTR(Name::from_ascii("c1.front.").unwrap())));
    }

    #[test]
    fn refuses_strangers_and_forwards_the_rest() {
        let reply = decoded(ask("c1.", RecordType::A, "192.168.9.9"));
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        let reply = decoded(ask("nobody.front.", RecordType::A, "10.1.0.3"));
        assert_eq!((reply.metadata.response_code, reply.metadata.authoritative), (ResponseCode::NXDomain, true));
        assert_eq!(ask("example.org.", RecordType::A, "10.1.0.3"), Response::Forward);
        assert_eq!(
            respond(&table(), "10.1.0.1".parse().unwrap(), "10.1.0.3".parse().unwrap(), b"junk"),
            Response::Ignore
        );
    }

    #[test]
    fn reads_nameservers() {
        let text = "# c\nsearch lan\nnameserver 127.0.0.53\nnameserver fd00::1\nnameserver fe80::1%eth0\n";
        let got: Vec<String> = nameservers(text).iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["127.0.0.53:53", "[fd00::1]:53"]);
    }
}
