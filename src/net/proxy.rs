//! PROXY protocol v1 and v2 on accepted connections: the settings ([`ProxyProtocol`]), the
//! parsed header ([`ProxyHeader`]) and the per-connection reading of it.
//!
//! A load balancer (HAProxy, nginx's stream module, AWS NLB, ...) in front of a server makes
//! every connection come from the balancer; with the PROXY protocol it writes a short header
//! with the client's real address before the client's first byte. This module reads exactly
//! that header and nothing more: it peeks (`MSG_PEEK`) at what the socket holds, asks the parser
//! whether a whole header is there, and only then reads the header's bytes, so the client's own
//! first bytes stay in the socket for the owner.
//!
//! # The parser: `ppp`
//! Three crates parse the protocol: `ppp` (2.3), `proxy-header` (0.1) and `proxy-protocol`
//! (0.5). `ppp` is the one taken here: it parses v1 and v2 (all address families, raw TLVs) from
//! a borrowed slice without copying, has one small dependency (`thiserror`), is past its 2.0
//! (the API has settled), and, what matters most for reading from a socket, its `PartialResult`
//! tells "incomplete, more bytes may complete it" from "invalid whatever follows", so a slow
//! client (one byte at a time) is waited for while a bad one is dropped at once.
//! `proxy-header` makes the same distinction and has typed TLVs, but is at 0.1;
//! `proxy-protocol` works on a `bytes::Buf` it consumes, depends on the old `snafu` 0.6 and has
//! no "incomplete" answer.
//!
//! What `ppp` leaves to us, done here: it neither checks TLVs nor caps v2 sizes; and its
//! "incomplete" is right for v2 but not for every v1 prefix (one that ends in a separator,
//! `"PROXY TCP4 1.2.3.4 5.6.7.8 80 "`, is called invalid), so a v1 line is framed here (up to
//! its CRLF, at most 107 bytes) and handed to `ppp` only whole.
//!
//! # Reading without holding anyone up
//! A header already in the socket when the connection is accepted (the usual case: balancers
//! write it with their first segment) is taken at once, with no registration, timer or task.
//! Any other connection is read by its own task on the Arbiter (never a future of the actor's
//! context, which actix polls all together at each wake-up), bounded by the header deadline and
//! the size cap, and ended when the server's [`Gatekeeper`] goes. Reads in flight, and the
//! connections they gave that wait for delivery, are bounded together by `max_pending`: at the
//! bound a new read evicts the oldest (a `BTreeMap` by read number, so neither costs more with
//! thousands pending).
//!
//! # Whom to believe
//! Each connection's [`ProxyPolicy`] comes from its source ([`ProxyProtocol::policy`]):
//! `Reject` closes it at once; `Require` and `Use` read and believe a header; `Ignore` reads a
//! header the same way but throws it away, so a forged one is neither believed nor handed to
//! the application as data.
//!
//! This is a mechanism: it knows sockets and time, never the actor or its messages.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use ppp::{v1, v2, PartialResult};
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::desc::addr::SocketAddress;
use crate::sys;

pub use crate::desc::proxy::*;
use crate::desc::proxy::{FIRST_PEEK, V1_MAX_LEN, V1_PREFIX, V2_FIXED_LEN, V2_SIGNATURE};

/// The command of a received header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum ProxyCommand {
    /// A relayed client connection (v1 headers are always this).
    Proxy,
    /// A connection the balancer made for itself (a health check): its addresses are ignored,
    /// as the specification says, and the connection is delivered with its own peer.
    Local,
}

/// The client's transport, as the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum ProxyTransport {
    /// TCP or a UNIX stream (`TCP4`/`TCP6` in v1, `STREAM` in v2).
    Stream,
    /// UDP or a UNIX datagram socket (v2 only).
    Datagram,
    /// Not said (v1 `UNKNOWN`, v2 `UNSPEC`, and `LOCAL` headers).
    Unspecified,
}

/// One type-length-value field of a v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub struct Tlv<'a> {
    /// The type (`PP2_TYPE_*`): see the constants.
    pub kind: u8,
    /// The value's bytes.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// `PP2_TYPE_ALPN`: the protocol the client negotiated (`h2`, `http/1.1`).
    pub const ALPN: u8 = 0x01;
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI).
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_CRC32C`: a checksum of the header (not checked here).
    pub const CRC32C: u8 = 0x03;
    /// `PP2_TYPE_NOOP`: padding.
    pub const NOOP: u8 = 0x04;
    /// `PP2_TYPE_UNIQUE_ID`: the balancer's id for the connection (at most 128 bytes).
    pub const UNIQUE_ID: u8 = 0x05;
    /// `PP2_TYPE_SSL`: TLS details, with sub-fields.
    pub const SSL: u8 = 0x20;
    /// `PP2_TYPE_NETNS`: the network namespace the client came through.
    pub const NETNS: u8 = 0x30;
}

/// A PROXY header received on an accepted connection: who the client really is.
///
/// Part of a [`SocketCreated`](crate::SocketCreated) (`proxy_header`), whose `peer` is then the
/// client's address from the header ([`source`](Self::source)); the connection's own peer, the
/// balancer, is [`balancer`](Self::balancer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub struct ProxyHeader {
    version: ProxyVersion,
    command: ProxyCommand,
    transport: ProxyTransport,
    source: Option<SocketAddress>,
    destination: Option<SocketAddress>,
    balancer: Option<SocketAddress>,
    tlvs: Vec<(u8, Box<[u8]>)>,
    len: usize,
}

impl ProxyHeader {
    /// Text (v1) or binary (v2).
    pub fn version(&self) -> ProxyVersion {
        self.version
    }

    /// `PROXY` or `LOCAL`.
    pub fn command(&self) -> ProxyCommand {
        self.command
    }

    /// Whether this is a `LOCAL` header (the balancer's own connection, a health check).
    pub fn is_local(&self) -> bool {
        self.command == ProxyCommand::Local
    }

    /// The client's transport.
    pub fn transport(&self) -> ProxyTransport {
        self.transport
    }

    /// The client's address (IP and port, or a UNIX path); `None` for `LOCAL`, v1 `UNKNOWN`
    /// and v2 `UNSPEC` headers.
    pub fn source(&self) -> Option<&SocketAddress> {
        self.source.as_ref()
    }

    /// The address the client connected to (the balancer's front end), when the header says.
    pub fn destination(&self) -> Option<&SocketAddress> {
        self.destination.as_ref()
    }

    /// The connection's own peer: the balancer's address (`None` on a UNIX stream server).
    pub fn balancer(&self) -> Option<&SocketAddress> {
        self.balancer.as_ref()
    }

    /// The header's size in bytes, as read from the socket.
    pub fn header_len(&self) -> usize {
        self.len
    }

    /// The v2 TLV fields, in order (none for v1).
    pub fn tlvs(&self) -> impl Iterator<Item = Tlv<'_>> + '_ {
        self.tlvs
            .iter()
            .map(|(kind, value)| Tlv { kind: *kind, value })
    }

    /// The first TLV field of this type.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs()
            .find(|tlv| tlv.kind == kind)
            .map(|tlv| tlv.value)
    }

    /// The ALPN the client negotiated with the balancer ([`Tlv::ALPN`]).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlv(Tlv::ALPN)
    }

    /// The host name the client asked for ([`Tlv::AUTHORITY`]), when it is UTF-8.
    pub fn authority(&self) -> Option<&str> {
        self.tlv(Tlv::AUTHORITY)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The balancer's id for the connection ([`Tlv::UNIQUE_ID`]).
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlv(Tlv::UNIQUE_ID)
    }

    /// The address to deliver as the peer: the client's, or for `LOCAL` and address-less
    /// headers the connection's own (specification, section 2.2).
    fn client(&self) -> Option<SocketAddress> {
        match (self.command, &self.source) {
            (ProxyCommand::Proxy, Some(source)) => Some(source.clone()),
            _ => self.balancer.clone(),
        }
    }
}

/// Counts of a server's PROXY header handling, in [`FactoryStats`](crate::FactoryStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub struct ProxyStats {
    /// Connections delivered with a header.
    pub headers: u64,
    /// Connections delivered without one believed: sources under [`ProxyPolicy::Ignore`], and
    /// connections without a header under [`ProxyPolicy::Use`] ([`ProxyMode::Optional`]).
    pub direct: u64,
    /// Headers sent by sources under [`ProxyPolicy::Ignore`]: read off the socket and thrown
    /// away (those connections are counted in `direct` too).
    pub ignored: u64,
    /// Connections closed without delivery, for whatever reason (the sum of `malformed`,
    /// `timed_out`, `refused` and `evicted`, plus clients that closed or reset before their
    /// header was complete).
    pub dropped: u64,
    /// Malformed, oversized or missing (under [`ProxyMode::Required`]) headers, and headers of
    /// a version not accepted.
    pub malformed: u64,
    /// Connections that did not complete their header within the header timeout.
    pub timed_out: u64,
    /// Connections from sources under [`ProxyPolicy::Reject`].
    pub refused: u64,
    /// Pending reads closed to make room for a new one at the
    /// [`max_pending`](ProxyProtocol::max_pending) bound (the oldest first); counted in
    /// `dropped` too.
    pub evicted: u64,
    /// Connections pending now (not a count of events): headers being read, and headers read
    /// and waiting for delivery (during a pause, or with the owner at its `max_outstanding`).
    /// At most [`max_pending`](ProxyProtocol::max_pending).
    pub pending: u64,
}

/// Why a connection was dropped.
#[derive(Debug)]
pub(crate) enum Rejection {
    Refused,
    NoHeader,
    Version(ProxyVersion),
    TooLarge(usize),
    Malformed(String),
    TimedOut,
    Evicted,
    Closed,
    Io(io::Error),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Refused => f.write_str("not an allowed sender of PROXY headers"),
            Rejection::NoHeader => f.write_str("no PROXY header"),
            Rejection::Version(version) => write!(f, "a {version:?} header is not accepted"),
            Rejection::TooLarge(len) => write!(f, "header of {len} bytes is over the cap"),
            Rejection::Malformed(why) => write!(f, "malformed header: {why}"),
            Rejection::TimedOut => f.write_str("no complete header before the deadline"),
            Rejection::Evicted => {
                f.write_str("the oldest pending header read, evicted at the max_pending bound")
            }
            Rejection::Closed => f.write_str("closed before its header was complete"),
            Rejection::Io(error) => write!(f, "{error}"),
        }
    }
}

/// What the bytes at the start of a connection are.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A whole header (without the balancer's address yet); its length is `header_len`.
    Header(ProxyHeader),
    /// These bytes cannot start a header.
    NotProxy,
    /// A header may be on its way: more bytes are needed.
    Incomplete,
    /// A header, but a bad one.
    Invalid(Rejection),
}

/// Whether `data` and `pattern` agree on their common length.
fn agrees(data: &[u8], pattern: &[u8]) -> bool {
    let n = data.len().min(pattern.len());
    data[..n] == pattern[..n]
}

/// Reads the bytes at the start of a connection (everything the socket holds, up to the cap).
pub(crate) fn parse(data: &[u8], config: &ProxyProtocol) -> Parsed {
    if data.is_empty() {
        return Parsed::Incomplete;
    }
    if agrees(data, V2_SIGNATURE) {
        if data.len() < V2_SIGNATURE.len() {
            return Parsed::Incomplete;
        }
        if !config.versions.accepts(ProxyVersion::V2) {
            return Parsed::Invalid(Rejection::Version(ProxyVersion::V2));
        }
        if data.len() >= V2_FIXED_LEN {
            let total = V2_FIXED_LEN + usize::from(u16::from_be_bytes([data[14], data[15]]));
            if total > config.max_header_len {
                return Parsed::Invalid(Rejection::TooLarge(total));
            }
        }
        return match v2::Header::try_from(data) {
            Ok(header) => from_v2(&header),
            Err(error) if error.is_incomplete() => Parsed::Incomplete,
            Err(error) => Parsed::Invalid(Rejection::Malformed(error.to_string())),
        };
    }
    if agrees(data, V1_PREFIX) {
        if data.len() < V1_PREFIX.len() {
            return Parsed::Incomplete;
        }
        if !config.versions.accepts(ProxyVersion::V1) {
            return Parsed::Invalid(Rejection::Version(ProxyVersion::V1));
        }
        // The header ends at the first CR, which must be followed by LF. ppp's own "partial"
        // judgement misses prefixes that end in a separator ("... 56324 "), so the frame is
        // found here and ppp parses only a whole line, where every error is final.
        let Some(cr) = data.iter().position(|&b| b == b'\r') else {
            // A line feed before any CR: a line ended without CR, which no more bytes can make
            // a header. Dropped at once, not at the deadline (issue 21).
            if data.contains(&b'\n') {
                return Parsed::Invalid(Rejection::Malformed(
                    "a v1 line must end in CRLF, not LF alone".to_owned(),
                ));
            }
            return match data.len() < V1_MAX_LEN {
                true => Parsed::Incomplete,
                false => Parsed::Invalid(Rejection::TooLarge(data.len())),
            };
        };
        if cr + 2 > V1_MAX_LEN {
            return Parsed::Invalid(Rejection::TooLarge(cr + 2));
        }
        if cr + 1 == data.len() {
            return Parsed::Incomplete;
        }
        return match v1::Header::try_from(&data[..cr + 2]) {
            Ok(header) => from_v1(&header),
            Err(error) => Parsed::Invalid(Rejection::Malformed(error.to_string())),
        };
    }
    Parsed::NotProxy
}

fn from_v1(header: &v1::Header<'_>) -> Parsed {
    let (transport, source, destination) = match header.addresses {
        v1::Addresses::Tcp4(a) => (
            ProxyTransport::Stream,
            Some(inet(a.source_address.into(), a.source_port)),
            Some(inet(a.destination_address.into(), a.destination_port)),
        ),
        v1::Addresses::Tcp6(a) => (
            ProxyTransport::Stream,
            Some(inet(a.source_address.into(), a.source_port)),
            Some(inet(a.destination_address.into(), a.destination_port)),
        ),
        v1::Addresses::Unknown => (ProxyTransport::Unspecified, None, None),
    };
    Parsed::Header(ProxyHeader {
        version: ProxyVersion::V1,
        command: ProxyCommand::Proxy,
        transport,
        source,
        destination,
        balancer: None,
        tlvs: Vec::new(),
        len: header.header.len(),
    })
}

fn from_v2(header: &v2::Header<'_>) -> Parsed {
    let mut tlvs = Vec::new();
    for tlv in header.tlvs() {
        match tlv {
            Ok(tlv) => tlvs.push((tlv.kind, Box::<[u8]>::from(tlv.value.as_ref()))),
            Err(error) => return Parsed::Invalid(Rejection::Malformed(error.to_string())),
        }
    }
    let command = match header.command {
        v2::Command::Local => ProxyCommand::Local,
        v2::Command::Proxy => ProxyCommand::Proxy,
    };
    let (mut transport, mut source, mut destination) = (
        match header.protocol {
            v2::Protocol::Stream => ProxyTransport::Stream,
            v2::Protocol::Datagram => ProxyTransport::Datagram,
            v2::Protocol::Unspecified => ProxyTransport::Unspecified,
        },
        None,
        None,
    );
    match header.addresses {
        v2::Addresses::Unspecified => {}
        v2::Addresses::IPv4(a) => {
            source = Some(inet(a.source_address.into(), a.source_port));
            destination = Some(inet(a.destination_address.into(), a.destination_port));
        }
        v2::Addresses::IPv6(a) => {
            source = Some(inet(a.source_address.into(), a.source_port));
            destination = Some(inet(a.destination_address.into(), a.destination_port));
        }
        v2::Addresses::Unix(a) => {
            source = Some(unix(&a.source));
            destination = Some(unix(&a.destination));
        }
    }
    if command == ProxyCommand::Local {
        // "The receiver must ... discard the protocol block including the family" (2.2).
        (transport, source, destination) = (ProxyTransport::Unspecified, None, None);
    }
    Parsed::Header(ProxyHeader {
        version: ProxyVersion::V2,
        command,
        transport,
        source,
        destination,
        balancer: None,
        tlvs,
        len: header.header.len(),
    })
}

fn inet(ip: IpAddr, port: u16) -> SocketAddress {
    SocketAddress::Inet(SocketAddr::new(ip, port))
}

/// A v2 UNIX address: a path padded with NULs.
fn unix(raw: &[u8]) -> SocketAddress {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    match &raw[..end] {
        [] => SocketAddress::Unnamed,
        path => SocketAddress::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(path))),
    }
}

/// A connection ready for delivery: the socket (with the client's first bytes unread), the peer
/// to report and the header, when there was one.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) socket: Socket,
    pub(crate) peer: Option<SocketAddress>,
    pub(crate) header: Option<Box<ProxyHeader>>,
}

/// Reading a header: resolves to the connection to deliver, or `None` when it was dropped
/// (closed, counted and logged already), evicted, or the server closed its gate.
///
/// Meant to run as its own task on the Arbiter (`actix::spawn`), not inside the actor's
/// context: actix polls every future of a context at each of its wake-ups, so a thousand reads
/// in flight there would cost a thousand polls per accepted client. As a task, each read wakes
/// only for its own socket and timer.
pub(crate) type HeaderRead = Pin<Box<dyn Future<Output = Option<Admitted>>>>;

/// What to do with a new connection.
pub(crate) enum Screened {
    /// Deliver it now: its header was already there (the usual case: balancers write it with
    /// their first segment), or its first bytes cannot start one and none is required.
    Deliver(Admitted),
    /// Dropped (refused, or a bad header already there): closed, counted and logged.
    Dropped,
    /// Its header is not all there yet: run this read as its own task. It holds a place under
    /// [`max_pending`](ProxyProtocol::max_pending) until it ends; what it gives is to be
    /// [`hold`](Gate::hold)ed for delivery.
    Read(HeaderRead),
}

/// A server's PROXY protocol settings and counters, shared with the reads in flight.
#[derive(Debug)]
pub(crate) struct Gate {
    config: ProxyProtocol,
    stats: Cell<ProxyStats>,
    /// Set when the server stops listening; reads in flight end at once.
    closed: Cell<bool>,
    closing: tokio::sync::Notify,
    /// The reads in flight, oldest first (by their number), each with its eviction signal.
    reads: RefCell<BTreeMap<u64, Rc<tokio::sync::Notify>>>,
    /// The number of the next read.
    next_read: Cell<u64>,
    /// Headers read and waiting for delivery (pause, the owner at its cap), oldest first.
    held: RefCell<VecDeque<Admitted>>,
}

/// The listening server's hold on its [`Gate`]: dropping it (stop, restart, broken listener)
/// ends every read in flight and closes the connections held, uncounted.
#[derive(Debug)]
pub(crate) struct Gatekeeper(Rc<Gate>);

impl Gatekeeper {
    pub(crate) fn new(config: ProxyProtocol) -> Gatekeeper {
        Gatekeeper(Rc::new(Gate {
            config,
            stats: Cell::new(ProxyStats::default()),
            closed: Cell::new(false),
            closing: tokio::sync::Notify::new(),
            reads: RefCell::new(BTreeMap::new()),
            next_read: Cell::new(0),
            held: RefCell::new(VecDeque::new()),
        }))
    }

    pub(crate) fn gate(&self) -> &Rc<Gate> {
        &self.0
    }
}

impl Drop for Gatekeeper {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.closing.notify_waiters();
        let held = std::mem::take(&mut *self.0.held.borrow_mut());
        drop(held);
    }
}

/// One look at a socket's first bytes.
enum Look {
    /// Decided: a header (read off the socket), no header (optional), or a rejection.
    Done(Result<Option<ProxyHeader>, Rejection>),
    /// More bytes are needed; `full`: the buffer was filled, look with a larger one.
    More { full: bool },
}

/// Whether a connection under `policy` may be delivered without a header.
fn optional(policy: ProxyPolicy) -> bool {
    matches!(policy, ProxyPolicy::Use | ProxyPolicy::Ignore)
}

/// Peeks at what `socket` holds (into `buf`), and reads the header's bytes once it is whole.
fn look(
    socket: &Socket,
    config: &ProxyProtocol,
    policy: ProxyPolicy,
    buf: &mut [u8],
    seen: &mut usize,
) -> Look {
    let n = match sys::peek(socket, buf) {
        Ok(0) => return Look::Done(Err(Rejection::Closed)),
        Ok(n) => n,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            return Look::More { full: false }
        }
        Err(error) => return Look::Done(Err(Rejection::Io(error))),
    };
    *seen = n;
    Look::Done(match parse(&buf[..n], config) {
        Parsed::Header(header) => consume(socket, header.len, buf).map(|()| Some(header)),
        Parsed::NotProxy if optional(policy) => Ok(None),
        Parsed::NotProxy => Err(Rejection::NoHeader),
        Parsed::Invalid(rejection) => Err(rejection),
        Parsed::Incomplete if n == buf.len() && n >= config.max_header_len => {
            Err(Rejection::TooLarge(n))
        }
        Parsed::Incomplete => {
            return Look::More {
                full: n == buf.len(),
            }
        }
    })
}

impl Gate {
    pub(crate) fn stats(&self) -> ProxyStats {
        let mut stats = self.stats.get();
        let pending = self.reads.borrow().len() + self.held.borrow().len();
        stats.pending = u64::try_from(pending).unwrap_or(u64::MAX);
        stats
    }

    fn count(&self, change: impl FnOnce(&mut ProxyStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    /// Decides about an accepted connection whose own peer is `balancer`: deliver it, drop it,
    /// or read its header first (the returned future, to run as a task on the Arbiter).
    pub(crate) fn screen(
        self: &Rc<Self>,
        socket: Socket,
        balancer: Option<SocketAddress>,
    ) -> Screened {
        let policy = self.config.policy(balancer.as_ref());
        if policy == ProxyPolicy::Reject {
            self.reject(&balancer, Rejection::Refused);
            return Screened::Dropped;
        }
        // The header is usually there already: then no registration, timer or task at all.
        let mut buf = [0; FIRST_PEEK];
        let mut seen = 0;
        match look(&socket, &self.config, policy, &mut buf, &mut seen) {
            Look::Done(outcome) => match self.settle(socket, balancer, policy, outcome) {
                Some(admitted) => Screened::Deliver(admitted),
                None => Screened::Dropped,
            },
            Look::More { .. } => {
                let Some(slot) = self.slot() else {
                    self.reject(&balancer, Rejection::Evicted);
                    return Screened::Dropped;
                };
                Screened::Read(Box::pin(read(slot, socket, balancer, policy)))
            }
        }
    }

    /// A place under the `max_pending` bound for a new read: when the bound is reached, the
    /// oldest read in flight is evicted for it. `None` only if every place is held by a header
    /// already read (no read to evict).
    fn slot(self: &Rc<Self>) -> Option<Slot> {
        let mut reads = self.reads.borrow_mut();
        let held = self.held.borrow().len();
        while reads.len() + held >= self.config.max_pending {
            let (_, evict) = reads.pop_first()?;
            // Counted here, so the stats are right at once; the read ends when next polled.
            self.count(|s| {
                s.dropped += 1;
                s.evicted += 1;
            });
            evict.notify_one();
        }
        let id = self.next_read.get();
        self.next_read.set(id.wrapping_add(1));
        let evict = Rc::new(tokio::sync::Notify::new());
        reads.insert(id, Rc::clone(&evict));
        Some(Slot {
            gate: Rc::clone(self),
            id,
            evict,
        })
    }

    /// Keeps a connection whose header a read gave, until the server can deliver it.
    pub(crate) fn hold(&self, admitted: Admitted) {
        if !self.closed.get() {
            self.held.borrow_mut().push_back(admitted);
        }
    }

    /// Whether a read connection waits for delivery.
    pub(crate) fn has_held(&self) -> bool {
        !self.held.borrow().is_empty()
    }

    /// The connection that has waited longest for delivery.
    pub(crate) fn take_held(&self) -> Option<Admitted> {
        self.held.borrow_mut().pop_front()
    }

    /// Counts a finished look and makes the delivery, if any.
    fn settle(
        &self,
        socket: Socket,
        balancer: Option<SocketAddress>,
        policy: ProxyPolicy,
        outcome: Result<Option<ProxyHeader>, Rejection>,
    ) -> Option<Admitted> {
        match outcome {
            Ok(Some(header)) if policy == ProxyPolicy::Ignore => {
                // Read off the socket, not believed: the client is served as itself.
                self.count(|s| {
                    s.direct += 1;
                    s.ignored += 1;
                });
                let from = balancer
                    .as_ref()
                    .map_or_else(|| "a UNIX client".to_owned(), |b| b.to_string());
                log::debug!(
                    "PROXY protocol: ignored the {:?} header sent by {from} (not trusted)",
                    header.version
                );
                Some(Admitted {
                    socket,
                    peer: balancer,
                    header: None,
                })
            }
            Ok(Some(mut header)) => {
                self.count(|s| s.headers += 1);
                header.balancer = balancer;
                Some(Admitted {
                    socket,
                    peer: header.client(),
                    header: Some(Box::new(header)),
                })
            }
            Ok(None) => {
                self.count(|s| s.direct += 1);
                Some(Admitted {
                    socket,
                    peer: balancer,
                    header: None,
                })
            }
            Err(rejection) => {
                self.reject(&balancer, rejection);
                None
            }
        }
    }

    fn reject(&self, balancer: &Option<SocketAddress>, rejection: Rejection) {
        self.count(|s| {
            s.dropped += 1;
            match rejection {
                Rejection::Refused => s.refused += 1,
                Rejection::TimedOut => s.timed_out += 1,
                Rejection::Evicted => s.evicted += 1,
                Rejection::NoHeader
                | Rejection::Version(_)
                | Rejection::TooLarge(_)
                | Rejection::Malformed(_) => s.malformed += 1,
                Rejection::Closed | Rejection::Io(_) => {}
            }
        });
        let from = balancer
            .as_ref()
            .map_or_else(|| "a UNIX client".to_owned(), |b| b.to_string());
        log::debug!("PROXY protocol: dropped the connection from {from}: {rejection}");
    }
}

/// A read's place under the `max_pending` bound, given back when the read ends in any way.
struct Slot {
    gate: Rc<Gate>,
    id: u64,
    evict: Rc<tokio::sync::Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.reads.borrow_mut().remove(&self.id);
    }
}

/// Reads the header of one connection, within the deadline, unless the gate closes or the read
/// is evicted first.
async fn read(
    slot: Slot,
    socket: Socket,
    balancer: Option<SocketAddress>,
    policy: ProxyPolicy,
) -> Option<Admitted> {
    let gate = Rc::clone(&slot.gate);
    let closing = gate.closing.notified();
    tokio::pin!(closing);
    // Registered before the check: a close after it wakes us.
    closing.as_mut().enable();
    if gate.closed.get() {
        return None;
    }
    let config = &gate.config;
    let fd = match sys::register(socket, Interest::READABLE) {
        Ok(fd) => fd,
        Err(error) => {
            gate.reject(&balancer, Rejection::Io(error));
            return None;
        }
    };
    let mut seen = 0;
    // Checked: a timeout too long for a deadline (`Duration::MAX`) means none (issue 21).
    let deadline = config
        .header_deadline_after()
        .and_then(|timeout| tokio::time::Instant::now().checked_add(timeout));
    let reading = async {
        let reading = take_header(&fd, config, policy, &mut seen);
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, reading)
                .await
                .unwrap_or(Err(Rejection::TimedOut)),
            None => reading.await,
        }
    };
    let outcome = tokio::select! {
        // The server stopped: the connection closes with the registration, uncounted.
        () = &mut closing => return None,
        // Evicted for a newer read (counted by the eviction): closed the same way.
        () = slot.evict.notified() => {
            log::debug!(
                "PROXY protocol: closed the connection from {}: {}",
                balancer.as_ref().map_or_else(|| "a UNIX client".to_owned(), |b| b.to_string()),
                Rejection::Evicted
            );
            return None;
        }
        outcome = reading => outcome,
    };
    drop(slot);
    // Deregistered: the delivered socket is tied to no runtime.
    let socket = fd.into_inner();
    let outcome = match outcome {
        Err(Rejection::TimedOut) if seen == 0 && optional(policy) => Ok(None),
        outcome => outcome,
    };
    gate.settle(socket, balancer, policy, outcome)
}

/// Waits until the socket holds a whole header, then reads exactly its bytes. `None`: no header
/// and the mode is optional. `seen`: the bytes the socket held at the last look.
async fn take_header(
    fd: &AsyncFd<Socket>,
    config: &ProxyProtocol,
    policy: ProxyPolicy,
    seen: &mut usize,
) -> Result<Option<ProxyHeader>, Rejection> {
    let mut buf = vec![0; FIRST_PEEK.min(config.max_header_len)];
    loop {
        let mut guard = fd.readable().await.map_err(Rejection::Io)?;
        match look(fd.get_ref(), config, policy, &mut buf, seen) {
            Look::Done(outcome) => return outcome,
            Look::More { full: true } => {
                // The buffer is full: look at more of what is queued, up to the cap.
                let wanted = announced_len(&buf).unwrap_or(buf.len() * 2);
                buf.resize(wanted.clamp(buf.len() + 1, config.max_header_len), 0);
            }
            Look::More { full: false } => {
                if *seen > 0 && guard.ready().is_read_closed() {
                    return Err(Rejection::Closed);
                }
                // Only events after the peek wake us again (tokio compares their ticks).
                guard.clear_ready();
            }
        }
    }
}

/// The whole length a v2 header announces, once its fixed part is there.
fn announced_len(data: &[u8]) -> Option<usize> {
    (data.len() >= V2_FIXED_LEN && data.starts_with(V2_SIGNATURE))
        .then(|| V2_FIXED_LEN + usize::from(u16::from_be_bytes([data[14], data[15]])))
}

/// Reads and discards exactly `len` bytes, which the last peek showed are queued.
fn consume(socket: &Socket, len: usize, buf: &mut [u8]) -> Result<(), Rejection> {
    let mut left = len;
    // Each read takes at least one byte, so this ends; one read does it in practice.
    while left > 0 {
        let chunk = left.min(buf.len());
        match (&*socket).read(&mut buf[..chunk]) {
            Ok(0) => return Err(Rejection::Closed),
            Ok(n) => left -= n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Rejection::Io(error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    const V1_TCP4: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";

    /// A v2 header built by hand (not by the parser's crate), with `body` after the fixed part.
    fn v2(command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family_protocol);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn v4_body(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&src);
        out.extend_from_slice(&dst);
        out.extend_from_slice(&sport.to_be_bytes());
        out.extend_from_slice(&dport.to_be_bytes());
        out
    }

    fn header(data: &[u8], config: &ProxyProtocol) -> ProxyHeader {
        match parse(data, config) {
            Parsed::Header(header) => header,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
        }
    }

    fn addr(text: &str) -> SocketAddress {
        SocketAddress::Inet(text.parse().unwrap())
    }

    #[test]
    fn v1_headers_give_addresses_and_their_exact_length() {
        let config = ProxyProtocol::required();
        let mut data = V1_TCP4.to_vec();
        data.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let h = header(&data, &config);
        assert_eq!(h.version(), ProxyVersion::V1);
        assert_eq!(h.command(), ProxyCommand::Proxy);
        assert_eq!(h.transport(), ProxyTransport::Stream);
        assert_eq!(h.source(), Some(&addr("192.0.2.1:56324")));
        assert_eq!(h.destination(), Some(&addr("198.51.100.2:443")));
        assert_eq!(h.header_len(), V1_TCP4.len());
        assert_eq!(h.tlvs().count(), 0);

        let h = header(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", &config);
        assert_eq!(h.source(), Some(&addr("[2001:db8::1]:1")));

        // UNKNOWN: the connection's own addresses are to be used.
        let h = header(b"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 1 2\r\nxyz", &config);
        assert_eq!(h.transport(), ProxyTransport::Unspecified);
        assert_eq!(h.source(), None);
        assert_eq!(h.client(), None);
    }

    #[test]
    fn v2_headers_give_addresses_tlvs_and_their_exact_length() {
        let config = ProxyProtocol::required();
        let mut body = v4_body([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80);
        body.extend(tlv(Tlv::ALPN, b"h2"));
        body.extend(tlv(Tlv::AUTHORITY, b"example.com"));
        body.extend(tlv(Tlv::UNIQUE_ID, b"id-42"));
        body.extend(tlv(Tlv::NOOP, &[0; 3]));
        let raw = v2(1, 0x11, &body);
        let mut data = raw.clone();
        data.extend_from_slice(b"client bytes");
        let h = header(&data, &config);
        assert_eq!(h.version(), ProxyVersion::V2);
        assert_eq!(h.transport(), ProxyTransport::Stream);
        assert_eq!(h.source(), Some(&addr("10.0.0.1:40000")));
        assert_eq!(h.destination(), Some(&addr("10.0.0.2:80")));
        assert_eq!(h.alpn(), Some(&b"h2"[..]));
        assert_eq!(h.authority(), Some("example.com"));
        assert_eq!(h.unique_id(), Some(&b"id-42"[..]));
        assert_eq!(h.tlvs().count(), 4);
        assert_eq!(h.header_len(), raw.len());

        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0, 1, 0, 2]);
        let h = header(&v2(1, 0x22, &v6), &config);
        assert_eq!(h.transport(), ProxyTransport::Datagram);
        assert_eq!(h.source(), Some(&addr("[2001:db8::1]:1")));

        let mut unix_body = vec![0u8; 216];
        unix_body[..9].copy_from_slice(b"/run/a.sk");
        let h = header(&v2(1, 0x31, &unix_body), &config);
        assert_eq!(h.source(), Some(&SocketAddress::Unix("/run/a.sk".into())));
        assert_eq!(h.destination(), Some(&SocketAddress::Unnamed));
    }

    #[test]
    fn local_and_unspec_headers_keep_the_connections_own_peer() {
        let config = ProxyProtocol::required();
        // LOCAL with addresses: the addresses are discarded (section 2.2).
        let mut h = header(
            &v2(0, 0x11, &v4_body([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)),
            &config,
        );
        assert!(h.is_local());
        assert_eq!(h.source(), None);
        h.balancer = Some(addr("127.0.0.1:9"));
        assert_eq!(h.client(), Some(addr("127.0.0.1:9")));
        // LOCAL, AF_UNSPEC, no body: HAProxy's health checks.
        let h = header(&v2(0, 0x00, &[]), &config);
        assert!(h.is_local());
        assert_eq!(h.header_len(), 16);
        // PROXY with AF_UNSPEC: no addresses either.
        let h = header(&v2(1, 0x00, &[]), &config);
        assert_eq!((h.command(), h.source()), (ProxyCommand::Proxy, None));
    }

    #[test]
    fn every_strict_prefix_of_a_header_is_incomplete() {
        let config = ProxyProtocol::required();
        let mut body = v4_body([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        body.extend(tlv(Tlv::UNIQUE_ID, b"abc"));
        for raw in [V1_TCP4.to_vec(), v2(1, 0x11, &body)] {
            for end in 0..raw.len() {
                assert!(
                    matches!(parse(&raw[..end], &config), Parsed::Incomplete),
                    "{:?}",
                    &raw[..end]
                );
            }
            assert!(matches!(parse(&raw, &config), Parsed::Header(_)));
        }
    }

    fn is_malformed(data: &[u8], config: &ProxyProtocol) -> bool {
        matches!(
            parse(data, config),
            Parsed::Invalid(Rejection::Malformed(_) | Rejection::TooLarge(_))
        )
    }

    #[test]
    fn malformed_headers_are_invalid_at_once() {
        let config = ProxyProtocol::required();
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 ::1 ::1 80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 99999\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rX",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY \xff\xfe\r\n",
        ] {
            assert!(
                is_malformed(bad, &config),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let body = v4_body([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
        let mut bad_version = v2(1, 0x11, &body);
        bad_version[12] = 0x31;
        let mut bad_command = v2(1, 0x11, &body);
        bad_command[12] = 0x2f;
        let bad_family = v2(1, 0x41, &body);
        let too_short_for_family = v2(1, 0x11, &body[..8]);
        let mut bad_tlv = body.clone();
        bad_tlv.extend([Tlv::ALPN, 0, 9, b'h']);
        let mut leftover = body.clone();
        leftover.extend([Tlv::ALPN, 0]);
        for bad in [
            bad_version,
            bad_command,
            bad_family,
            too_short_for_family,
            v2(1, 0x11, &bad_tlv),
            v2(1, 0x11, &leftover),
        ] {
            assert!(is_malformed(&bad, &config), "{bad:?}");
        }
    }

    #[test]
    fn oversized_headers_are_refused_before_they_arrive() {
        let config = ProxyProtocol::required().max_header_len(512);
        // A v2 header announcing 60,000 bytes: refused from its first 16.
        let mut fixed = v2(1, 0x11, &[]);
        fixed[14..16].copy_from_slice(&60_000u16.to_be_bytes());
        assert!(matches!(
            parse(&fixed, &config),
            Parsed::Invalid(Rejection::TooLarge(60_016))
        ));
        // A v1 header with no end in sight.
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(200, b'a');
        assert!(matches!(
            parse(&long, &config),
            Parsed::Invalid(Rejection::TooLarge(_))
        ));
        // The cap is at least what a v2 UNIX header needs, and at most the format's limit.
        assert_eq!(
            ProxyProtocol::required().max_header_len(0).max_header_len,
            232
        );
        assert_eq!(
            ProxyProtocol::required()
                .max_header_len(usize::MAX)
                .max_header_len,
            V2_MAX_LEN
        );
    }

    #[test]
    fn other_first_bytes_are_no_header_and_versions_are_filtered() {
        let config = ProxyProtocol::required();
        for data in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01",
            b"PROXX",
            b"\r\n\r\n\x01",
        ] {
            assert!(matches!(parse(data, &config), Parsed::NotProxy), "{data:?}");
        }
        let v1_only = ProxyProtocol::required().versions(ProxyVersions::V1);
        let v2_only = ProxyProtocol::required().versions(ProxyVersions::V2);
        let v2_header = v2(0, 0, &[]);
        assert!(matches!(
            parse(&v2_header, &v1_only),
            Parsed::Invalid(Rejection::Version(ProxyVersion::V2))
        ));
        assert!(matches!(
            parse(V1_TCP4, &v2_only),
            Parsed::Invalid(Rejection::Version(ProxyVersion::V1))
        ));
        // The signature must be whole before the version is judged.
        assert!(matches!(parse(b"PROX", &v2_only), Parsed::Incomplete));
    }

    #[test]
    fn networks_match_their_addresses() {
        let net: IpNetwork = "192.0.2.77/24".parse().unwrap();
        assert_eq!(net.to_string(), "192.0.2.0/24");
        assert!(net.contains("192.0.2.1".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let v6: IpNetwork = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let one = IpNetwork::from(Ipv4Addr::new(10, 0, 0, 1));
        assert!(one.contains("10.0.0.1".parse().unwrap()));
        assert!(!one.contains("10.0.0.2".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "host/8",
            "[::1]/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
        let config = ProxyProtocol::required().allow_from([net]);
        assert!(config.trusts(Some(&addr("192.0.2.9:1"))));
        assert!(!config.trusts(Some(&addr("198.51.100.1:1"))));
        assert!(config.trusts(None), "UNIX clients have no address to judge");
        assert!(ProxyProtocol::required().trusts(Some(&addr("198.51.100.1:1"))));
    }

    #[test]
    fn each_source_gets_its_policy() {
        use ProxyPolicy::*;
        let net = |text: &str| text.parse::<IpNetwork>().unwrap();
        let config = ProxyProtocol::required()
            .policy_for([net("10.0.0.0/8")], Use)
            .policy_for([net("10.9.0.0/16"), net("fd00::/8")], Reject) // after the /8: unused
            .allow_from([net("192.0.2.0/24")]);
        assert_eq!(config.policy(Some(&addr("10.9.1.1:1"))), Use, "first match");
        assert_eq!(config.policy(Some(&addr("[fd00::1]:1"))), Reject);
        assert_eq!(
            config.policy(Some(&addr("192.0.2.9:1"))),
            Require,
            "the mode's"
        );
        assert_eq!(config.policy(Some(&addr("[::ffff:192.0.2.9]:1"))), Require);
        assert_eq!(
            config.policy(Some(&addr("6.6.6.6:1"))),
            Ignore,
            "the default"
        );
        assert_eq!(config.policy(None), Require, "UNIX: the mode's");
        let config = config.default_policy(Reject).unix_policy(Ignore);
        assert_eq!(config.policy(Some(&addr("6.6.6.6:1"))), Reject);
        assert_eq!(config.policy(None), Ignore);
        // No rule at all: every source is a balancer, as before.
        assert_eq!(
            ProxyProtocol::optional().policy(Some(&addr("6.6.6.6:1"))),
            Use
        );
        // A default alone applies to every address.
        let alone = ProxyProtocol::required().default_policy(Ignore);
        assert_eq!(alone.policy(Some(&addr("6.6.6.6:1"))), Ignore);
        #[allow(deprecated)]
        let old = ProxyProtocol::required()
            .allow_from([net("192.0.2.0/24")])
            .untrusted(Untrusted::Refuse);
        assert_eq!(old.policy(Some(&addr("6.6.6.6:1"))), Reject);
    }

    #[test]
    fn a_v1_line_without_cr_is_invalid_at_once() {
        let config = ProxyProtocol::required();
        for line in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n",
            b"PROXY \n",
        ] {
            assert!(
                matches!(
                    parse(line, &config),
                    Parsed::Invalid(Rejection::Malformed(_))
                ),
                "{line:?}"
            );
        }
    }

    #[test]
    fn any_header_timeout_is_a_deadline_or_none() {
        for (timeout, some) in [
            (Duration::from_millis(1), true),
            (PROXY_NO_DEADLINE - Duration::from_nanos(1), true),
            (PROXY_NO_DEADLINE, false),
            (Duration::from_secs(u64::MAX / 2), false),
            (Duration::MAX, false),
        ] {
            let after = ProxyProtocol::required()
                .header_timeout(timeout)
                .header_deadline_after();
            assert_eq!(after.is_some(), some, "{timeout:?}");
            if let Some(after) = after {
                assert!(std::time::Instant::now().checked_add(after).is_some());
                assert!(tokio::time::Instant::now().checked_add(after).is_some());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes at all: no panic, and no waiting for more once the cap is reached.
        #[test]
        fn any_bytes_are_judged_without_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let config = ProxyProtocol::required().max_header_len(300);
            match parse(&data, &config) {
                Parsed::Header(h) => prop_assert!(h.header_len() <= data.len()),
                Parsed::Incomplete => prop_assert!(data.len() < 300),
                Parsed::NotProxy | Parsed::Invalid(_) => {}
            }
        }

        /// Bytes after a valid signature: the same, the hard case for a parser.
        #[test]
        fn any_bytes_after_a_signature(
            v2sig in any::<bool>(),
            tail in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let config = ProxyProtocol::required().max_header_len(300);
            let mut data = if v2sig { V2_SIGNATURE.to_vec() } else { V1_PREFIX.to_vec() };
            data.extend(tail);
            match parse(&data, &config) {
                Parsed::Header(h) => prop_assert!(h.header_len() <= data.len()),
                Parsed::Incomplete => prop_assert!(data.len() < 300),
                Parsed::NotProxy => prop_assert!(false, "a signature is a header"),
                Parsed::Invalid(_) => {}
            }
        }

        /// Random v1 and v2 headers with random client bytes after them: the addresses come
        /// back, the length is the header's own, every prefix is incomplete.
        #[test]
        fn generated_headers_round_trip(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            sport in any::<u16>(), dport in any::<u16>(),
            id in prop::collection::vec(any::<u8>(), 0..128),
            binary in any::<bool>(),
            after in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let config = ProxyProtocol::required();
            let raw = if binary {
                let mut body = v4_body(src, dst, sport, dport);
                body.extend(tlv(Tlv::UNIQUE_ID, &id));
                v2(1, 0x11, &body)
            } else {
                format!(
                    "PROXY TCP4 {} {} {sport} {dport}\r\n",
                    Ipv4Addr::from(src),
                    Ipv4Addr::from(dst)
                )
                .into_bytes()
            };
            let mut data = raw.clone();
            data.extend(&after);
            let h = header(&data, &config);
            prop_assert_eq!(h.header_len(), raw.len());
            prop_assert_eq!(
                h.source(),
                Some(&SocketAddress::Inet(SocketAddr::new(Ipv4Addr::from(src).into(), sport)))
            );
            prop_assert_eq!(
                h.destination(),
                Some(&SocketAddress::Inet(SocketAddr::new(Ipv4Addr::from(dst).into(), dport)))
            );
            if binary {
                prop_assert_eq!(h.unique_id(), Some(&id[..]));
            }
            for end in 0..raw.len() {
                prop_assert!(matches!(parse(&raw[..end], &config), Parsed::Incomplete));
            }
        }
    }

    // --- Reading from real sockets -------------------------------------------------------

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A connected pair on loopback: (the client's std stream, the accepted non-blocking socket
    /// and its peer).
    fn pair() -> (std::net::TcpStream, Socket, SocketAddress) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        (client, Socket::from(accepted), SocketAddress::Inet(peer))
    }

    async fn admit(gate: &Rc<Gate>, socket: Socket, peer: SocketAddress) -> Option<Admitted> {
        match gate.screen(socket, Some(peer)) {
            Screened::Deliver(admitted) => Some(admitted),
            Screened::Dropped => None,
            Screened::Read(read) => read.await,
        }
    }

    fn rest(socket: &Socket) -> Vec<u8> {
        socket.set_nonblocking(false).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut out = vec![0; 64];
        let n = (&*socket).read(&mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn only_the_headers_bytes_are_read() {
        runtime().block_on(async {
            let gate_keeper = Gatekeeper::new(ProxyProtocol::required());
            let gate = gate_keeper.gate();
            let (mut client, socket, peer) = pair();
            let mut data = V1_TCP4.to_vec();
            data.extend_from_slice(b"first bytes");
            client.write_all(&data).unwrap();
            let admitted = admit(gate, socket, peer.clone()).await.expect("admitted");
            assert_eq!(admitted.peer, Some(addr("192.0.2.1:56324")));
            let header = admitted.header.expect("a header");
            assert_eq!(header.balancer(), Some(&peer));
            assert_eq!(rest(&admitted.socket), b"first bytes");
            assert_eq!(gate.stats().headers, 1);
        });
    }

    #[test]
    fn a_slow_header_one_byte_at_a_time_is_waited_for() {
        runtime().block_on(async {
            let gate_keeper = Gatekeeper::new(ProxyProtocol::required());
            let gate = gate_keeper.gate();
            let (mut client, socket, peer) = pair();
            client.set_nodelay(true).unwrap();
            let mut body = v4_body([10, 9, 8, 7], [10, 0, 0, 1], 5555, 80);
            body.extend(tlv(Tlv::AUTHORITY, b"slow.example"));
            let mut data = v2(1, 0x11, &body);
            data.extend_from_slice(b"after");
            let writer = std::thread::spawn(move || {
                for byte in data {
                    client.write_all(&[byte]).unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
                client
            });
            let admitted = admit(gate, socket, peer).await.expect("admitted");
            let _client = writer.join().unwrap();
            assert_eq!(admitted.peer, Some(addr("10.9.8.7:5555")));
            assert_eq!(
                admitted.header.as_ref().and_then(|h| h.authority()),
                Some("slow.example")
            );
            // The header ended before "after" was sent: some or all of it is there now.
            let rest = rest(&admitted.socket);
            assert!(b"after".starts_with(&rest) && !rest.is_empty(), "{rest:?}");
        });
    }

    #[test]
    fn a_silent_client_is_dropped_at_the_deadline() {
        runtime().block_on(async {
            let limit = Duration::from_millis(200);
            let gate_keeper = Gatekeeper::new(ProxyProtocol::required().header_timeout(limit));
            let gate = gate_keeper.gate();
            let (_client, socket, peer) = pair();
            let started = tokio::time::Instant::now();
            assert!(admit(gate, socket, peer).await.is_none());
            let took = started.elapsed();
            assert!(took >= limit && took < limit * 10, "{took:?}");
            let stats = gate.stats();
            assert_eq!((stats.timed_out, stats.dropped), (1, 1));
        });
    }

    #[test]
    fn optional_mode_delivers_clients_without_a_header() {
        runtime().block_on(async {
            let gate_keeper = Gatekeeper::new(
                ProxyProtocol::optional().header_timeout(Duration::from_millis(100)),
            );
            let gate = gate_keeper.gate();
            // First bytes that cannot start a header: delivered at once, bytes intact.
            let (mut client, socket, peer) = pair();
            client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            let admitted = admit(gate, socket, peer.clone()).await.expect("admitted");
            assert_eq!((admitted.peer, admitted.header), (Some(peer), None));
            assert_eq!(rest(&admitted.socket), b"GET / HTTP/1.1\r\n");
            // Silent (the server speaks first): delivered at the deadline.
            let (_client, socket, peer) = pair();
            let admitted = admit(gate, socket, peer.clone()).await.expect("admitted");
            assert_eq!(admitted.peer, Some(peer));
            // A malformed header is still dropped.
            let (mut client, socket, peer) = pair();
            client.write_all(b"PROXY TCP4 nonsense\r\n").unwrap();
            assert!(admit(gate, socket, peer).await.is_none());
            let stats = gate.stats();
            assert_eq!((stats.direct, stats.malformed, stats.dropped), (2, 1, 1));
        });
    }

    #[test]
    fn a_client_that_closes_mid_header_is_dropped_at_once() {
        runtime().block_on(async {
            let gate_keeper =
                Gatekeeper::new(ProxyProtocol::required().header_timeout(Duration::from_secs(30)));
            let gate = gate_keeper.gate();
            let (mut client, socket, peer) = pair();
            client.write_all(&V1_TCP4[..10]).unwrap();
            drop(client);
            let started = tokio::time::Instant::now();
            assert!(admit(gate, socket, peer).await.is_none());
            assert!(started.elapsed() < Duration::from_secs(5));
            let stats = gate.stats();
            assert_eq!((stats.dropped, stats.timed_out, stats.malformed), (1, 0, 0));
        });
    }

    #[test]
    fn untrusted_peers_are_served_as_themselves_or_refused() {
        runtime().block_on(async {
            let elsewhere: IpNetwork = "192.0.2.0/24".parse().unwrap();
            let ignore_keeper = Gatekeeper::new(ProxyProtocol::required().allow_from([elsewhere]));
            let ignore = ignore_keeper.gate();
            let (mut client, socket, peer) = pair();
            let mut data = V1_TCP4.to_vec();
            data.extend_from_slice(b"data");
            client.write_all(&data).unwrap();
            let admitted = admit(ignore, socket, peer.clone()).await.expect("served");
            // Not trusted: its header is stripped and not believed; its peer is its own.
            assert_eq!((admitted.peer, admitted.header), (Some(peer), None));
            assert_eq!(rest(&admitted.socket), b"data");
            let stats = ignore.stats();
            assert_eq!((stats.direct, stats.ignored, stats.headers), (1, 1, 0));

            let refuse_keeper = Gatekeeper::new(
                ProxyProtocol::required()
                    .allow_from([elsewhere])
                    .default_policy(ProxyPolicy::Reject),
            );
            let refuse = refuse_keeper.gate();
            let (_client, socket, peer) = pair();
            assert!(admit(refuse, socket, peer).await.is_none());
            assert_eq!(refuse.stats().refused, 1);
        });
    }

    #[test]
    fn a_silent_client_without_deadline_waits_and_panics_nothing() {
        runtime().block_on(async {
            for timeout in [
                Duration::MAX,
                Duration::from_secs(u64::MAX / 2),
                PROXY_NO_DEADLINE,
            ] {
                let keeper = Gatekeeper::new(ProxyProtocol::required().header_timeout(timeout));
                let (_client, socket, peer) = pair();
                let Screened::Read(read) = keeper.gate().screen(socket, Some(peer)) else {
                    panic!("nothing sent yet: a read");
                };
                let waited = tokio::time::timeout(Duration::from_millis(50), read).await;
                assert!(waited.is_err(), "still waiting: no deadline");
                assert_eq!(keeper.gate().stats().timed_out, 0);
            }
        });
    }

    #[test]
    fn the_oldest_pending_read_is_evicted_at_the_bound() {
        runtime().block_on(async {
            let keeper = Gatekeeper::new(ProxyProtocol::required().max_pending(3));
            let gate = keeper.gate();
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let mut clients = Vec::new();
                    let mut reads = Vec::new();
                    for _ in 0..5 {
                        let (client, socket, peer) = pair();
                        let Screened::Read(read) = gate.screen(socket, Some(peer)) else {
                            panic!("a read");
                        };
                        reads.push(tokio::task::spawn_local(read));
                        clients.push(client);
                    }
                    let stats = gate.stats();
                    assert_eq!((stats.pending, stats.evicted, stats.dropped), (3, 2, 2));
                    // The two oldest end when next polled, closed; the three newest wait.
                    for read in reads.drain(..2) {
                        let ended = tokio::time::timeout(Duration::from_secs(5), read).await;
                        assert!(matches!(ended, Ok(Ok(None))));
                    }
                    for (i, mut client) in clients.into_iter().enumerate() {
                        client
                            .set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        let got = client.read(&mut [0; 1]);
                        if i < 2 {
                            assert!(matches!(got, Ok(0)), "{i}: {got:?}");
                        } else {
                            assert!(got.is_err(), "{i}: still open");
                        }
                    }
                    drop(reads);
                })
                .await;
        });
    }

    #[test]
    fn delivered_sockets_stay_nonblocking_and_unregistered() {
        runtime().block_on(async {
            let gate_keeper = Gatekeeper::new(ProxyProtocol::required());
            let gate = gate_keeper.gate();
            let (mut client, socket, peer) = pair();
            client.write_all(&v2(0, 0, &[])).unwrap();
            let admitted = admit(gate, socket, peer).await.expect("admitted");
            assert!(admitted.header.as_ref().is_some_and(|h| h.is_local()));
            assert!(admitted.socket.nonblocking().unwrap());
            // Registering it again works only if the read let go of it.
            let again = sys::register(admitted.socket, Interest::READABLE);
            assert!(again.is_ok());
        });
    }

    #[test]
    fn headers_already_there_need_no_task() {
        runtime().block_on(async {
            let keeper = Gatekeeper::new(ProxyProtocol::required());
            let (mut client, socket, peer) = pair();
            client.write_all(V1_TCP4).unwrap();
            // Give loopback a moment to queue the bytes: bounded, and checked by the peek.
            let mut probe = [0; 8];
            for _ in 0..500 {
                if sys::peek(&socket, &mut probe).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(matches!(
                keeper.gate().screen(socket, Some(peer)),
                Screened::Deliver(_)
            ));
            let (mut client, socket, peer) = pair();
            client.write_all(b"PROXY nonsense\r\n").unwrap();
            for _ in 0..500 {
                if sys::peek(&socket, &mut probe).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(matches!(
                keeper.gate().screen(socket, Some(peer)),
                Screened::Dropped
            ));
            let (_client, socket, peer) = pair();
            assert!(matches!(
                keeper.gate().screen(socket, Some(peer)),
                Screened::Read(_)
            ));
        });
    }

    #[test]
    fn closing_the_gate_ends_the_reads_in_flight() {
        runtime().block_on(async {
            let keeper = Gatekeeper::new(ProxyProtocol::required());
            let (mut client, socket, peer) = pair();
            let Screened::Read(read) = keeper.gate().screen(socket, Some(peer)) else {
                panic!("nothing sent yet: a read");
            };
            let local = tokio::task::LocalSet::new();
            let ended = local
                .run_until(async move {
                    let reading = tokio::task::spawn_local(read);
                    tokio::task::yield_now().await;
                    drop(keeper);
                    tokio::time::timeout(Duration::from_secs(5), reading).await
                })
                .await;
            assert!(matches!(ended, Ok(Ok(None))), "{ended:?}");
            // The connection is closed: the client reads EOF.
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            assert_eq!(client.read(&mut [0; 1]).unwrap(), 0);
        });
    }
}
