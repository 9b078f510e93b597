//! nf_tables over netlink, byte by byte: attributes, messages, batches, and
//! reading replies. Attribute numbers are those of `linux/netfilter/nf_tables.h`.

use std::io;

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use crate::firewall::nft::{Element, Expr, Family, Verdict};

/// nfnetlink subsystem of nf_tables.
const SUBSYS: u16 = 10;
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// NFT_MSG_GETGEN: asks for the ruleset's generation, the barrier after a batch.
const GETGEN: u16 = 16;
const NLA_F_NESTED: u16 = 0x8000;

/// nf_tables message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    NewTable = 0,
    GetTable = 1,
    DelTable = 2,
    NewChain = 3,
    NewRule = 6,
    NewSet = 9,
    GetSet = 10,
    NewSetElem = 12,
    GetSetElem = 13,
    DelSetElem = 14,
}

/// netlink header flags.
pub mod flags {
    pub const REQUEST: u16 = 1;
    pub const ACK: u16 = 4;
    pub const DUMP: u16 = 0x300;
    pub const EXCL: u16 = 0x200;
    pub const CREATE: u16 = 0x400;
    pub const APPEND: u16 = 0x800;
}

/// Netlink attributes being built.
#[derive(Debug, Default, Clone)]
pub struct Attrs(Vec<u8>);

impl Attrs {
    fn header(&mut self, kind: u16, len: usize) {
        self.0.extend_from_slice(&((len + 4) as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    /// Raw bytes.
    pub fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        self.header(kind, value.len());
        self.0.extend_from_slice(value);
        self.pad();
        self
    }

    /// A big-endian u32 (nf_tables' integers).
    pub fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// A NUL-terminated string.
    pub fn str(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut b = value.as_bytes().to_vec();
        b.push(0);
        self.bytes(kind, &b)
    }

    /// Nested attributes.
    pub fn nested(&mut self, kind: u16, build: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::default();
        build(&mut inner);
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }
}

/// A batch of nf_tables messages, committed by the kernel all or nothing.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    first: u32,
    /// What each message was for, to name the one the kernel refused.
    pub what: Vec<String>,
}

fn message(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &Attrs) {
    let len = 16 + 4 + attrs.0.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(&attrs.0);
}

impl Batch {
    /// An empty batch; sequence numbers start at `seq`.
    pub fn new(seq: u32) -> Batch {
        let mut buf = Vec::new();
        message(&mut buf, BATCH_BEGIN, flags::REQUEST, seq, 0, SUBSYS, &Attrs::default());
        Batch { buf, seq: seq + 1, first: seq + 1, what: Vec::new() }
    }

    /// Add one message. The kernel answers only if it refuses it: a batch
    /// of thousands would otherwise flood the socket with acknowledgements.
    pub fn push(&mut self, cmd: Cmd, family: Family, extra: u16, attrs: &Attrs, what: String) {
        let flags = flags::REQUEST | extra;
        message(&mut self.buf, (SUBSYS << 8) | cmd as u16, flags, self.seq, family.nfproto(), 0, attrs);
        self.seq += 1;
        self.what.push(what);
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.what.is_empty()
    }

    /// Close the batch, send it, and wait for the kernel's verdict. The
    /// kernel applies a batch whole or not at all, while `send` runs, and
    /// reports the message it refused; a request sent after it and
    /// acknowledged tells that nothing was refused. `Err` names the message.
    pub fn commit(mut self, socket: &Socket) -> Result<(), (io::Error, String)> {
        let end = self.seq;
        message(&mut self.buf, BATCH_END, flags::REQUEST, end, 0, SUBSYS, &Attrs::default());
        let barrier = end + 1;
        socket.send(&self.buf, 0).map_err(|e| (e, "sending the batch".to_string()))?;
        let mut probe = Vec::new();
        message(&mut probe, (SUBSYS << 8) | GETGEN, flags::REQUEST | flags::ACK, barrier, 0, 0, &Attrs::default());
        socket.send(&probe, 0).map_err(|e| (e, "asking the kernel for the batch's verdict".to_string()))?;
        let mut failure = None;
        loop {
            let replies = receive(socket).map_err(|e| (e, "reading the kernel's answer".to_string()))?;
            for reply in replies {
                if reply.kind != NLMSG_ERROR {
                    continue;
                }
                if reply.seq == barrier {
                    return failure.map_or(Ok(()), Err);
                }
                if reply.error != 0 && failure.is_none() {
                    let index = reply.seq.checked_sub(self.first).map(|i| i as usize);
                    let what =
                        index.and_then(|i| self.what.get(i)).cloned().unwrap_or_else(|| "apply the batch".into());
                    failure = Some((io::Error::from_raw_os_error(-reply.error), what));
                }
            }
        }
    }
}

/// One message from the kernel.
#[derive(Debug)]
pub struct Reply {
    pub kind: u16,
    pub seq: u32,
    /// For NLMSG_ERROR: the negated errno, or 0 for an acknowledgement.
    pub error: i32,
    /// The nfgenmsg's family (NFPROTO_*).
    pub family: u8,
    /// The attributes after the nfgenmsg header.
    pub attrs: Vec<u8>,
}

fn receive(socket: &Socket) -> io::Result<Vec<Reply>> {
    let mut buf = Vec::with_capacity(1 << 16);
    socket.recv(&mut buf, 0)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let word = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
        let len = word(at) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let seq = word(at + 8);
        let body = &buf[at + 16..at + len];
        let error = if kind == NLMSG_ERROR && body.len() >= 4 { word(at + 16) as i32 } else { 0 };
        let attrs = if body.len() >= 4 { body[4..].to_vec() } else { Vec::new() };
        let family = body.first().copied().unwrap_or_default();
        out.push(Reply { kind, seq, error, family, attrs });
        at += (len + 3) & !3;
    }
    Ok(out)
}

/// Whether table `netsh` of `family` exists.
pub fn table_exists(socket: &Socket, seq: u32, family: Family) -> io::Result<bool> {
    exists(socket, seq, family, Cmd::GetTable, &table())
}

/// Every table of every family: (NFPROTO_* family, name).
pub fn tables(socket: &Socket, seq: u32) -> io::Result<Vec<(u8, String)>> {
    let mut buf = Vec::new();
    let get = (SUBSYS << 8) | Cmd::GetTable as u16;
    message(&mut buf, get, flags::REQUEST | flags::ACK | flags::DUMP, seq, 0, 0, &Attrs::default());
    socket.send(&buf, 0)?;
    let mut found = Vec::new();
    loop {
        for reply in receive(socket)? {
            match reply.kind {
                _ if reply.seq != seq => {}
                NLMSG_ERROR if reply.error != 0 => return Err(io::Error::from_raw_os_error(-reply.error)),
                NLMSG_ERROR | NLMSG_DONE => return Ok(found),
                _ => {
                    let name = attrs_of(&reply.attrs).find(|(kind, _)| *kind == TABLE_NAME);
                    if let Some((_, name)) = name {
                        found.push((reply.family, String::from_utf8_lossy(name).trim_end_matches('\0').to_string()));
                    }
                }
            }
        }
    }
}

/// Whether set `name` of table `netsh` of `family` exists.
pub fn set_exists(socket: &Socket, seq: u32, family: Family, name: &str) -> io::Result<bool> {
    let mut attrs = Attrs::default();
    attrs.str(SET_TABLE, crate::firewall::nft::TABLE).str(SET_NAME, name);
    exists(socket, seq, family, Cmd::GetSet, &attrs)
}

/// Whether the object a `get` command names exists.
fn exists(socket: &Socket, seq: u32, family: Family, get: Cmd, attrs: &Attrs) -> io::Result<bool> {
    let mut buf = Vec::new();
    message(&mut buf, (SUBSYS << 8) | get as u16, flags::REQUEST | flags::ACK, seq, family.nfproto(), 0, attrs);
    socket.send(&buf, 0)?;
    loop {
        for reply in receive(socket)? {
            match reply.kind {
                NLMSG_ERROR if reply.seq == seq && reply.error == -libc_enoent() => return Ok(false),
                NLMSG_ERROR if reply.seq == seq && reply.error != 0 => {
                    return Err(io::Error::from_raw_os_error(-reply.error));
                }
                NLMSG_ERROR if reply.seq == seq => return Ok(true),
                _ => {}
            }
        }
    }
}

/// Open an nf_tables socket in the calling thread's namespace.
pub fn open() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    // A batch goes out as one datagram, and batches publishing many ports are
    // big: allow them (as root, past the default limit).
    let _ = socket.set_rx_buf_sz(1 << 20);
    let _ = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBufForce, &(64 << 20));
    Ok(socket)
}

fn request_elements(socket: &Socket, seq: u32, family: Family, set: &str, key: Option<&[u8]>) -> io::Result<()> {
    let mut attrs = Attrs::default();
    attrs.str(ELEM_LIST_TABLE, crate::firewall::nft::TABLE).str(ELEM_LIST_SET, set);
    if let Some(key) = key {
        attrs.nested(ELEM_LIST_ELEMENTS, |l| {
            l.nested(LIST_ELEM, |e| {
                e.nested(ELEM_KEY, |k| {
                    k.bytes(DATA_VALUE, key);
                });
            });
        });
    }
    let extra = if key.is_some() { 0 } else { flags::DUMP };
    let mut buf = Vec::new();
    message(
        &mut buf,
        (SUBSYS << 8) | Cmd::GetSetElem as u16,
        flags::REQUEST | flags::ACK | extra,
        seq,
        family.nfproto(),
        0,
        &attrs,
    );
    socket.send(&buf, 0).map(drop)
}

/// Ask for set elements (one key, or the whole set with `key` None) and
/// return each element's (key, userdata). A missing element (or set) is none.
pub fn get_elements(
    socket: &Socket,
    seq: u32,
    family: Family,
    set: &str,
    key: Option<&[u8]>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    request_elements(socket, seq, family, set, key)?;
    let mut found = Vec::new();
    loop {
        for reply in receive(socket)? {
            if reply.seq != seq {
                continue;
            }
            match reply.kind {
                NLMSG_ERROR if reply.error == -libc_enoent() => return Ok(found),
                NLMSG_ERROR if reply.error != 0 => return Err(io::Error::from_raw_os_error(-reply.error)),
                NLMSG_ERROR | NLMSG_DONE => return Ok(found),
                _ => found.extend(parse_elements(&reply.attrs)),
            }
        }
    }
}

/// Whether `set` holds any element. Reads only the first part of the dump,
/// on a socket of its own that is dropped with the rest unread, so the cost
/// does not grow with the set.
pub fn has_elements(family: Family, set: &str) -> io::Result<bool> {
    let socket = open()?;
    let found = first_element(&socket, family, set);
    // Releasing a socket whose dump is unfinished waits ~10 ms in the
    // kernel; nothing depends on that wait, so it happens off this thread.
    std::thread::spawn(move || drop(socket));
    found
}

fn first_element(socket: &Socket, family: Family, set: &str) -> io::Result<bool> {
    request_elements(socket, 1, family, set, None)?;
    loop {
        for reply in receive(socket)? {
            match reply.kind {
                NLMSG_ERROR if reply.error == -libc_enoent() => return Ok(false),
                NLMSG_ERROR if reply.error != 0 => return Err(io::Error::from_raw_os_error(-reply.error)),
                NLMSG_ERROR | NLMSG_DONE => return Ok(false),
                _ if !parse_elements(&reply.attrs).is_empty() => return Ok(true),
                _ => {}
            }
        }
    }
}

fn libc_enoent() -> i32 {
    nix::libc::ENOENT
}

/// Iterate (kind without flags, value) over attributes.
fn attrs_of(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & !(NLA_F_NESTED | 0x4000);
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((kind, value))
    })
}

fn parse_elements(attrs: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (kind, list) in attrs_of(attrs) {
        if kind != ELEM_LIST_ELEMENTS {
            continue;
        }
        for (_, elem) in attrs_of(list) {
            let mut key = Vec::new();
            let mut user = Vec::new();
            for (kind, value) in attrs_of(elem) {
                match kind {
                    ELEM_KEY => {
                        if let Some((_, v)) = attrs_of(value).find(|(k, _)| *k == DATA_VALUE) {
                            key = v.to_vec();
                        }
                    }
                    ELEM_USERDATA => user = value.to_vec(),
                    _ => {}
                }
            }
            out.push((key, user));
        }
    }
    out
}

/// An element comment as nft stores it (a userdata TLV), and back.
pub fn comment_userdata(comment: &str) -> Vec<u8> {
    let text = comment.as_bytes();
    let len = text.len().min(253);
    let mut out = vec![0u8, (len + 1) as u8];
    out.extend_from_slice(&text[..len]);
    out.push(0);
    out
}

/// The comment in an element's userdata, if it has one.
pub fn comment_of(userdata: &[u8]) -> Option<String> {
    let mut at = 0;
    while at + 2 <= userdata.len() {
        let (kind, len) = (userdata[at], userdata[at + 1] as usize);
        let value = userdata.get(at + 2..at + 2 + len)?;
        if kind == 0 {
            return Some(String::from_utf8_lossy(value).trim_end_matches('\0').to_string());
        }
        at += 2 + len;
    }
    None
}

// Attribute numbers.
const TABLE_NAME: u16 = 1;
const CHAIN_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
const CHAIN_HOOK: u16 = 4;
const HOOK_NUM: u16 = 1;
const HOOK_PRIORITY: u16 = 2;
const CHAIN_POLICY: u16 = 5;
const CHAIN_TYPE: u16 = 7;
const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_EXPRESSIONS: u16 = 4;
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
const SET_TABLE: u16 = 1;
const SET_NAME: u16 = 2;
const SET_FLAGS: u16 = 3;
const SET_KEY_TYPE: u16 = 4;
const SET_KEY_LEN: u16 = 5;
const SET_DATA_TYPE: u16 = 6;
const SET_DATA_LEN: u16 = 7;
const SET_DESC: u16 = 9;
const SET_DESC_CONCAT: u16 = 2;
const SET_FIELD_LEN: u16 = 1;
const SET_ID: u16 = 10;
const SET_USERDATA: u16 = 13;
const ELEM_LIST_TABLE: u16 = 1;
const ELEM_LIST_SET: u16 = 2;
const ELEM_LIST_ELEMENTS: u16 = 3;
const ELEM_KEY: u16 = 1;
const ELEM_DATA: u16 = 2;
const ELEM_FLAGS: u16 = 3;
const ELEM_USERDATA: u16 = 6;
const ELEM_KEY_END: u16 = 10;
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
const IMMEDIATE_DATA: u16 = 2;
const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;

const SET_INTERVAL: u32 = 0x4;
const SET_MAP: u32 = 0x8;
const SET_CONCAT: u32 = 0x80;
const ELEM_INTERVAL_END: u32 = 0x1;

/// `add table FAMILY netsh`.
pub fn table() -> Attrs {
    let mut a = Attrs::default();
    a.str(TABLE_NAME, crate::firewall::nft::TABLE);
    a
}

/// `add chain`, with its hook for base chains.
pub fn chain(def: &crate::firewall::nft::ChainDef) -> Attrs {
    let mut a = Attrs::default();
    a.str(CHAIN_TABLE, crate::firewall::nft::TABLE).str(CHAIN_NAME, def.name);
    if let Some((hook, prio, kind)) = def.hook {
        a.nested(CHAIN_HOOK, |h| {
            h.u32(HOOK_NUM, hook).u32(HOOK_PRIORITY, prio as u32);
        })
        .u32(CHAIN_POLICY, 1)
        .str(CHAIN_TYPE, kind);
    }
    a
}

/// `add set`, numbered `id` so rules in the same batch can name it.
pub fn set(def: &crate::firewall::nft::SetDef, family: Family, id: u32) -> Attrs {
    use crate::firewall::nft::SetDef;
    let key_len: u32 = def.key.iter().map(|f| f.len(family)).sum();
    let concat = def.key.len() > 1;
    let mut set_flags = if def.interval { SET_INTERVAL } else { 0 };
    if concat {
        set_flags |= SET_CONCAT;
    }
    if !def.data.is_empty() {
        set_flags |= SET_MAP;
    }
    let mut a = Attrs::default();
    a.str(SET_TABLE, crate::firewall::nft::TABLE)
        .str(SET_NAME, def.name)
        .u32(SET_FLAGS, set_flags)
        .u32(SET_KEY_TYPE, SetDef::type_id(def.key, family))
        .u32(SET_KEY_LEN, key_len)
        .u32(SET_ID, id);
    if !def.data.is_empty() {
        let data_len: u32 = def.data.iter().map(|f| f.len(family)).sum();
        a.u32(SET_DATA_TYPE, SetDef::type_id(def.data, family)).u32(SET_DATA_LEN, data_len);
    }
    if let [field] = def.key {
        // nft prints a single-field key in the byte order this says: host for names, network for addresses.
        let order: u32 = if *field == crate::firewall::nft::Field::Ifname { 1 } else { 2 };
        let mut udata = vec![0u8, 4];
        udata.extend_from_slice(&order.to_le_bytes());
        a.bytes(SET_USERDATA, &udata);
    }
    if concat {
        a.nested(SET_DESC, |d| {
            d.nested(SET_DESC_CONCAT, |c| {
                for field in def.key {
                    c.nested(LIST_ELEM, |e| {
                        e.u32(SET_FIELD_LEN, field.len(family));
                    });
                }
            });
        });
    }
    a
}

/// `add rule` at the end of `chain`.
pub fn rule(chain: &str, exprs: &[Expr]) -> Attrs {
    let mut a = Attrs::default();
    a.str(RULE_TABLE, crate::firewall::nft::TABLE).str(RULE_CHAIN, chain).nested(RULE_EXPRESSIONS, |list| {
        for e in exprs {
            list.nested(LIST_ELEM, |x| expr(x, e));
        }
    });
    a
}

fn verdict(a: &mut Attrs, v: Verdict) {
    let (code, chain): (i32, Option<&str>) = match v {
        Verdict::Accept => (1, None),
        Verdict::Drop => (0, None),
        Verdict::Return => (-5, None),
        Verdict::Jump(c) => (-3, Some(c)),
        Verdict::Goto(c) => (-4, Some(c)),
    };
    a.nested(IMMEDIATE_DATA, |data| {
        data.nested(DATA_VERDICT, |d| {
            d.u32(VERDICT_CODE, code as u32);
            if let Some(c) = chain {
                d.str(VERDICT_CHAIN, c);
            }
        });
    });
}

fn data(a: &mut Attrs, kind: u16, bytes: &[u8]) {
    a.nested(kind, |d| {
        d.bytes(DATA_VALUE, bytes);
    });
}

/// Writes an expression's attributes.
type AttrWriter<'a> = Box<dyn FnOnce(&mut Attrs) + 'a>;

fn expr(x: &mut Attrs, e: &Expr) {
    let (name, build): (&str, AttrWriter<'_>) = match e {
        Expr::Meta { key, dreg } => (
            "meta",
            Box::new(move |d| {
                d.u32(1, *dreg).u32(2, *key as u32);
            }),
        ),
        Expr::SetMeta { key, sreg } => (
            "meta",
            Box::new(move |d| {
                d.u32(2, *key as u32).u32(3, *sreg);
            }),
        ),
        Expr::Payload { base, offset, len, dreg } => (
            "payload",
            Box::new(move |d| {
                d.u32(1, *dreg).u32(2, *base).u32(3, *offset).u32(4, *len);
            }),
        ),
        Expr::Cmp { sreg, eq, data: bytes } => (
            "cmp",
            Box::new(move |d| {
                d.u32(1, *sreg).u32(2, if *eq { 0 } else { 1 });
                data(d, 3, bytes);
            }),
        ),
        Expr::Lookup { set, sreg, dreg } => (
            "lookup",
            Box::new(move |d| {
                d.str(1, set).u32(2, *sreg);
                if let Some(dreg) = dreg {
                    d.u32(3, *dreg);
                }
            }),
        ),
        Expr::Bitwise { sreg, dreg, mask, xor } => (
            "bitwise",
            Box::new(move |d| {
                d.u32(1, *sreg).u32(2, *dreg).u32(3, mask.len() as u32);
                data(d, 4, mask);
                data(d, 5, xor);
            }),
        ),
        Expr::Ct { key, dreg } => (
            "ct",
            Box::new(move |d| {
                d.u32(1, *dreg).u32(2, *key);
            }),
        ),
        // NFT_CT_PROTO_DST (12) in IP_CT_DIR_ORIGINAL (0).
        Expr::CtOriginalPort { dreg } => (
            "ct",
            Box::new(move |d| {
                d.u32(1, *dreg).u32(2, 12).bytes(3, &[0]);
            }),
        ),
        Expr::FibAddrType { dest, dreg } => (
            "fib",
            Box::new(move |d| {
                d.u32(1, *dreg).u32(2, 3).u32(3, if *dest { 2 } else { 1 });
            }),
        ),
        Expr::Dnat { family, addr, port } => (
            "nat",
            Box::new(move |d| {
                d.u32(1, 1).u32(2, u32::from(family.nfproto())).u32(3, *addr).u32(5, *port);
            }),
        ),
        // NFTA_NAT_TYPE 0: NFT_NAT_SNAT.
        Expr::Snat { family, addr } => (
            "nat",
            Box::new(move |d| {
                d.u32(1, 0).u32(2, u32::from(family.nfproto())).u32(3, *addr);
            }),
        ),
        Expr::Masquerade => ("masq", Box::new(|_| {})),
        Expr::Verdict(v) => (
            "immediate",
            Box::new(move |d| {
                d.u32(1, 0);
                verdict(d, *v);
            }),
        ),
    };
    x.str(EXPR_NAME, name).nested(EXPR_DATA, build);
}

/// The element-list attributes of one element (and, for an rbtree range,
/// its end marker), with `comment` as userdata.
pub fn elements(el: &Element, comment: Option<&str>) -> Attrs {
    let mut a = Attrs::default();
    a.str(ELEM_LIST_TABLE, crate::firewall::nft::TABLE).str(ELEM_LIST_SET, el.set).nested(ELEM_LIST_ELEMENTS, |list| {
        list.nested(LIST_ELEM, |e| {
            data(e, ELEM_KEY, &el.key);
            if let Some(end) = &el.key_end {
                data(e, ELEM_KEY_END, end);
            }
            if let Some(d) = &el.data {
                data(e, ELEM_DATA, d);
            }
            if let Some(c) = comment {
                e.bytes(ELEM_USERDATA, &comment_userdata(c));
            }
        });
        if let Some(end) = &el.end_marker {
            list.nested(LIST_ELEM, |e| {
                data(e, ELEM_KEY, end);
                e.u32(ELEM_FLAGS, ELEM_INTERVAL_END);
            });
        }
    });
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_round_trip_through_userdata() {
        let c = "netsh:docker-bridge/n/c:abc:publish tcp *:8080 172.25.0.2:80";
        assert_eq!(comment_of(&comment_userdata(c)).as_deref(), Some(c));
        assert_eq!(comment_of(&[9, 200, 1]), None);
    }

    #[test]
    fn attributes_are_padded_and_nested() {
        let mut a = Attrs::default();
        a.str(1, "ab").nested(2, |n| {
            n.u32(1, 7);
        });
        assert_eq!(a.0, vec![7, 0, 1, 0, b'a', b'b', 0, 0, 12, 0, 2, 0x80, 8, 0, 1, 0, 0, 0, 0, 7]);
    }
}
