// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Who may use the TEE service, and within which limits: the policy file.
//!
//! A peer on a Unix socket is known by its credentials (SO_PEERCRED: uid,
//! gid, pid); a peer on TCP by its address only, which proves nothing, so
//! TCP peers are refused unless a rule names them. Rules are tried in
//! order and the first that matches gives the peer's [`Policy`] (the
//! mediator's: openable TAs, login treatment, quotas), which the service
//! enforces whatever the VMM's own mediator did.
//!
//! ```toml
//! # A VMM running as uid 1000 (any group): two TAs, at most 8 sessions.
//! [[peer]]
//! uid = 1000
//! tas = ["8aaaf200-2450-11e4-abe2-0002a5d5c51b", "c3f6e2a0-5b7d-4f1e-8a9c-6d0e1f2a3b4c"]
//! login = "force-public"
//! max_sessions = 8
//!
//! # Root, with the defaults (any TA, Xen's quotas).
//! [[peer]]
//! uid = 0
//!
//! # A VMM on another machine. No authentication: only on a network you trust.
//! [[peer]]
//! tcp = "192.0.2.7"
//! max_calls = 2
//! ```
//!
//! Keys of a rule: `uid` and `gid` (Unix peers; `gid` optional), or `tcp`
//! (an IP address, or `"any"`); then optionally `tas` (UUIDs; any TA if
//! absent), `login` (`pass-through`, `force-public`, `deny-kernel`), and
//! the peer's quotas: `max_vms`, `max_calls`, `max_sessions`,
//! `max_buffers`, `max_pages_per_buffer`, `max_total_pages`,
//! `max_call_bytes`, and `max_call_wait_us`, the longest a call of the
//! peer still in the TEE is waited for when the peer asks
//! ([`crate::wire::Request::CallWait`]; a connection's thread waits, so
//! it costs the service nothing but that peer's own latency), and
//! `share_memory` (default true), whether the peer may pass its guests'
//! RAM, and `max_shared_bytes`, how much of it all its VMs together
//! (64 GiB by default: with 64 connections, 4 TiB of the service's address
//! space at most, and as much of its memory as those pages once touched),
//! RAM ([`crate::wire::Request::ShareMemory`]). Unknown
//! keys are errors, and so are values outside the ranges of [`ranges`],
//! each with a line that names it.
//!
//! The quotas are the peer's: one connection's VMs together, not each VM
//! (a peer with 64 VMs and `max_sessions = 1` has one session), the VM's
//! own limits being the same values. Sessions being opened count as open,
//! calls parked in an RPC count as calls, and `max_call_bytes` bounds the
//! guest bytes all of the peer's calls in progress hold in the service.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use optee_mediator::{LoginPolicy, Policy, Quotas, TaFilter, Uuid};
use serde::Deserialize;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A process on this host, by its credentials.
    Unix {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
        /// Process id.
        pid: i32,
    },
    /// A TCP peer, by its address.
    Tcp(std::net::SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix { uid, gid, pid } => write!(f, "pid {pid} (uid {uid}, gid {gid})"),
            Peer::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// Why the policy file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// It could not be read.
    #[error("{path}: {err}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        err: std::io::Error,
    },
    /// It is not valid TOML of this form.
    #[error("{path}:{line}:{column}: {err}")]
    Syntax {
        /// The file.
        path: String,
        /// Where, from 1 (1 when the parser names no place).
        line: usize,
        /// The column there, in characters, from 1.
        column: usize,
        /// The parser's message, on one line.
        err: String,
    },
    /// A rule is wrong.
    #[error("{path}: peer rule {rule}: {what}")]
    Rule {
        /// The file.
        path: String,
        /// The rule's number, from 1.
        rule: usize,
        /// What is wrong.
        what: String,
    },
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Unix peers with this uid (and gid, if given).
    Unix {
        /// User id.
        uid: u32,
        /// Group id, any if `None`.
        gid: Option<u32>,
    },
    /// TCP peers from this address (any if `None`).
    Tcp(Option<IpAddr>),
}

impl Match {
    /// Whether `peer` matches.
    pub fn matches(&self, peer: &Peer) -> bool {
        match (self, peer) {
            (Match::Unix { uid, gid }, Peer::Unix { uid: u, gid: g, .. }) => {
                uid == u && gid.is_none_or(|gid| gid == *g)
            }
            (Match::Tcp(addr), Peer::Tcp(a)) => addr.is_none_or(|addr| addr == a.ip()),
            _ => false,
        }
    }
}

/// The service's own bounds on a peer, beyond the mediator's [`Policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// VMs the peer may have at once.
    pub max_vms: u32,
    /// Bytes of guest memory all the peer's calls in progress may hold in
    /// the service (their memory parameters' and RPC buffers' data).
    pub max_call_bytes: u64,
    /// The longest call wait the peer is granted, in microseconds.
    pub max_call_wait_us: u32,
    /// Whether the peer may share its guests' memory with the service
    /// (Unix peers only: the file passes on the socket).
    pub share_memory: bool,
    /// Bytes of guest RAM all the peer's VMs together may share (mapped in
    /// the service for their lives).
    pub max_shared_bytes: u64,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_vms: 64,
            max_call_bytes: 32 << 20,
            max_call_wait_us: crate::wire::MAX_CALL_WAIT_US,
            share_memory: true,
            max_shared_bytes: 64 << 30,
        }
    }
}

/// What a rule grants the peers it matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// The TAs, login treatment and quotas (all the peer's VMs together).
    pub policy: Policy,
    /// The service's own bounds.
    pub limits: PeerLimits,
}

/// One rule: whom it matches and what they get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Whom.
    pub matches: Match,
    /// What.
    pub grant: Grant,
}

/// The range each quota of a rule must be in, checked when the file is
/// read: a value outside is an error naming it, never an allocation the
/// service cannot make.
pub mod ranges {
    use std::ops::RangeInclusive;

    /// `max_vms`: the TEE has 65535 client ids for every peer together.
    pub const MAX_VMS: RangeInclusive<u32> = 1..=1024;
    /// `max_calls`.
    pub const MAX_CALLS: RangeInclusive<u32> = 1..=1024;
    /// `max_sessions`.
    pub const MAX_SESSIONS: RangeInclusive<u32> = 0..=4096;
    /// `max_buffers`.
    pub const MAX_BUFFERS: RangeInclusive<u32> = 0..=4096;
    /// `max_pages_per_buffer`: 256 MiB buffers (a page list of 512 KiB).
    pub const MAX_PAGES_PER_BUFFER: RangeInclusive<u64> = 1..=65536;
    /// `max_total_pages`: 4 GiB registered (page lists of 8 MiB).
    pub const MAX_TOTAL_PAGES: RangeInclusive<u64> = 0..=1 << 20;
    /// `max_call_bytes`: a page to 1 GiB.
    pub const MAX_CALL_BYTES: RangeInclusive<u64> = 4096..=1 << 30;
    /// `max_shared_bytes`: none to 1 TiB.
    pub const MAX_SHARED_BYTES: RangeInclusive<u64> = 0..=1 << 40;
    /// `max_call_wait_us`: none to a tenth of a second.
    pub const MAX_CALL_WAIT_US: RangeInclusive<u32> = 0..=100_000;
}

/// The service's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    /// In order; the first match wins.
    pub rules: Vec<Rule>,
}

/// Why a peer is refused, for its log line and its [`crate::wire::Response::Refused`].
pub fn refusal(peer: &Peer) -> String {
    match peer {
        Peer::Unix { uid, .. } => format!(
            "no rule of the service's policy matches uid {uid}: add a [[peer]] rule with \
             uid = {uid} to the policy file (--policy)"
        ),
        Peer::Tcp(a) => format!(
            "TCP peers are refused unless a rule names them: add a [[peer]] rule with \
             tcp = \"{}\" (or \"any\") to the policy file (--policy); TCP carries no \
             credentials, so do it only on a network you trust",
            a.ip()
        ),
    }
}

impl ServicePolicy {
    /// The policy without a file: the service's own user (`uid`) with the
    /// default policy; everyone else, TCP peers included, refused.
    pub fn owner(uid: u32) -> ServicePolicy {
        ServicePolicy {
            rules: vec![Rule {
                matches: Match::Unix { uid, gid: None },
                grant: Grant::default(),
            }],
        }
    }

    /// What `peer` is granted, `None` if refused.
    pub fn lookup(&self, peer: &Peer) -> Option<&Grant> {
        self.rules
            .iter()
            .find(|r| r.matches.matches(peer))
            .map(|r| &r.grant)
    }

    /// Whether any rule accepts TCP peers.
    pub fn accepts_tcp(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.matches, Match::Tcp(_)))
    }

    /// Whether any rule accepts Unix peers.
    pub fn accepts_unix(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.matches, Match::Unix { .. }))
    }

    /// Why nobody can connect to a service listening on Unix sockets
    /// (`unix`) and TCP (`tcp`) under this policy, `None` if someone can.
    pub fn admits_nobody(&self, unix: bool, tcp: bool) -> Option<String> {
        if self.rules.is_empty() {
            return Some("the policy has no [[peer]] rule: nobody can connect".to_owned());
        }
        if (unix && self.accepts_unix()) || (tcp && self.accepts_tcp()) {
            return None;
        }
        let (listens, rules) = match (unix, tcp) {
            (true, false) => ("Unix sockets only", "TCP peers only"),
            (false, true) => ("TCP only", "Unix peers (uid) only"),
            _ => ("nothing", "peers"),
        };
        Some(format!(
            "the service listens on {listens} and the policy's rules name {rules}: nobody can connect"
        ))
    }

    /// Reads the policy file at `path`.
    pub fn load(path: &Path) -> Result<ServicePolicy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|err| PolicyError::Read {
            path: path.display().to_string(),
            err,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a policy file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<ServicePolicy, PolicyError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            PolicyError::Syntax {
                path: path.to_owned(),
                line,
                column,
                err: e.message().trim_end().replace('\n', " "),
            }
        })?;
        let rules = raw
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.rule().map_err(|what| PolicyError::Rule {
                    path: path.to_owned(),
                    rule: i + 1,
                    what,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ServicePolicy { rules })
    }
}

/// The line and column (from 1, the column in characters) of byte
/// `offset` of `text` (clamped to the text, and back to a character's
/// start).
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    peer: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    uid: Option<u32>,
    gid: Option<u32>,
    tcp: Option<String>,
    tas: Option<Vec<String>>,
    login: Option<String>,
    max_vms: Option<u32>,
    max_calls: Option<u32>,
    max_sessions: Option<u32>,
    max_buffers: Option<u32>,
    max_pages_per_buffer: Option<u64>,
    max_total_pages: Option<u64>,
    max_call_bytes: Option<u64>,
    max_call_wait_us: Option<u32>,
    share_memory: Option<bool>,
    max_shared_bytes: Option<u64>,
}

/// `value` (or `default` if absent), refused outside `range`.
fn ranged<T: PartialOrd + fmt::Display + Copy>(
    key: &str,
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, String> {
    let v = value.unwrap_or(default);
    if v < *range.start() {
        Err(format!(
            "{key} = {v}: under the least allowed, {}",
            range.start()
        ))
    } else if v > *range.end() {
        Err(format!(
            "{key} = {v}: over the most allowed, {}",
            range.end()
        ))
    } else {
        Ok(v)
    }
}

impl RawRule {
    fn rule(self) -> Result<Rule, String> {
        let matches = match (self.uid, self.gid, self.tcp) {
            (Some(uid), gid, None) => Match::Unix { uid, gid },
            (None, None, Some(t)) if t == "any" => Match::Tcp(None),
            (None, None, Some(t)) => {
                Match::Tcp(Some(t.parse().map_err(|_| {
                    format!("tcp = \"{t}\": not an IP address or \"any\"")
                })?))
            }
            (None, Some(_), None) => return Err("gid without uid".to_owned()),
            (None, None, None) => return Err("names no peer: give uid (and gid) or tcp".into()),
            _ => return Err("both a Unix peer (uid, gid) and tcp: one or the other".into()),
        };
        let tas = match self.tas {
            None => TaFilter::Any,
            Some(list) => TaFilter::Only(
                list.iter()
                    .map(|s| parse_uuid(s).ok_or_else(|| format!("tas: \"{s}\" is not a UUID")))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let login = match self.login.as_deref() {
            None | Some("pass-through") => LoginPolicy::PassThrough,
            Some("force-public") => LoginPolicy::ForcePublic,
            Some("deny-kernel") => LoginPolicy::DenyKernel,
            Some(other) => {
                return Err(format!(
                    "login = \"{other}\": want pass-through, force-public or deny-kernel"
                ))
            }
        };
        if self.max_calls == Some(0) {
            return Err("max_calls = 0 allows no call: remove the rule to refuse the peer".into());
        }
        let d = Quotas::default();
        let l = PeerLimits::default();
        let max_calls = match self.max_calls {
            None => None,
            v => Some(ranged("max_calls", v, 0, ranges::MAX_CALLS)?),
        };
        let quotas = Quotas {
            max_calls,
            max_sessions: ranged(
                "max_sessions",
                self.max_sessions,
                d.max_sessions,
                ranges::MAX_SESSIONS,
            )?,
            max_buffers: ranged(
                "max_buffers",
                self.max_buffers,
                d.max_buffers,
                ranges::MAX_BUFFERS,
            )?,
            max_pages_per_buffer: ranged(
                "max_pages_per_buffer",
                self.max_pages_per_buffer,
                d.max_pages_per_buffer,
                ranges::MAX_PAGES_PER_BUFFER,
            )?,
            max_total_pages: ranged(
                "max_total_pages",
                self.max_total_pages,
                d.max_total_pages,
                ranges::MAX_TOTAL_PAGES,
            )?,
        };
        let limits = PeerLimits {
            max_vms: ranged("max_vms", self.max_vms, l.max_vms, ranges::MAX_VMS)?,
            max_call_bytes: ranged(
                "max_call_bytes",
                self.max_call_bytes,
                l.max_call_bytes,
                ranges::MAX_CALL_BYTES,
            )?,
            max_call_wait_us: ranged(
                "max_call_wait_us",
                self.max_call_wait_us,
                l.max_call_wait_us,
                ranges::MAX_CALL_WAIT_US,
            )?,
            share_memory: self.share_memory.unwrap_or(l.share_memory),
            max_shared_bytes: ranged(
                "max_shared_bytes",
                self.max_shared_bytes,
                l.max_shared_bytes,
                ranges::MAX_SHARED_BYTES,
            )?,
        };
        Ok(Rule {
            matches,
            grant: Grant {
                policy: Policy {
                    quotas,
                    tas,
                    login,
                    ..Policy::default()
                },
                limits,
            },
        })
    }
}

/// A UUID in its usual form, 8-4-4-4-12 hexadecimal digits.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Uuid(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
[[peer]]
uid = 1000
tas = ["8aaaf200-2450-11e4-abe2-0002a5d5c51b"]
login = "force-public"
max_sessions = 8

[[peer]]
uid = 0
gid = 5

[[peer]]
tcp = "192.0.2.7"
max_calls = 2
"#;

    fn unix(uid: u32, gid: u32) -> Peer {
        Peer::Unix { uid, gid, pid: 1 }
    }

    #[test]
    fn the_documented_example_parses_and_the_first_match_wins() {
        let p = ServicePolicy::parse(DOC, "p.toml").unwrap();
        assert_eq!(p.rules.len(), 3);
        let a = &p.lookup(&unix(1000, 77)).unwrap().policy;
        assert_eq!(a.quotas.max_sessions, 8);
        assert_eq!(a.login, LoginPolicy::ForcePublic);
        assert!(a.tas.allows(&optee_mediator::utee::ta::HELLO_UUID));
        assert!(!a.tas.allows(&optee_mediator::utee::ta::MEMORY_UUID));
        assert!(p.lookup(&unix(0, 5)).is_some());
        assert!(p.lookup(&unix(0, 6)).is_none(), "gid is part of the rule");
        assert!(p.lookup(&unix(1001, 0)).is_none());
        let tcp = p
            .lookup(&Peer::Tcp("192.0.2.7:4000".parse().unwrap()))
            .unwrap();
        assert_eq!(tcp.policy.quotas.max_calls, Some(2));
        assert_eq!(tcp.limits, PeerLimits::default());
        assert!(p
            .lookup(&Peer::Tcp("192.0.2.8:4000".parse().unwrap()))
            .is_none());
        assert!(p.accepts_tcp());
    }

    #[test]
    fn without_a_file_only_the_owner_is_accepted_and_tcp_never() {
        let p = ServicePolicy::owner(1234);
        assert_eq!(p.lookup(&unix(1234, 9)), Some(&Grant::default()));
        assert!(p.lookup(&unix(0, 0)).is_none());
        assert!(p
            .lookup(&Peer::Tcp("127.0.0.1:1".parse().unwrap()))
            .is_none());
        assert!(!p.accepts_tcp());
    }

    #[test]
    fn refusals_say_how_to_be_accepted() {
        let r = refusal(&unix(1001, 1));
        assert!(r.contains("uid = 1001") && r.contains("--policy"), "{r}");
        let r = refusal(&Peer::Tcp("10.1.2.3:9".parse().unwrap()));
        assert!(r.contains("tcp = \"10.1.2.3\""), "{r}");
    }

    #[test]
    fn bad_rules_are_named_by_number_and_reason() {
        let cases = [
            (
                "[[peer]]\nuid = 1\n[[peer]]\nlogin = \"x\"\n",
                "peer rule 2: names no peer",
            ),
            ("[[peer]]\nuid = 1\ntcp = \"any\"\n", "peer rule 1: both"),
            ("[[peer]]\ngid = 1\n", "peer rule 1: gid without uid"),
            ("[[peer]]\ntcp = \"host\"\n", "tcp = \"host\": not an IP"),
            (
                "[[peer]]\nuid = 1\ntas = [\"nope\"]\n",
                "tas: \"nope\" is not a UUID",
            ),
            (
                "[[peer]]\nuid = 1\nlogin = \"root\"\n",
                "login = \"root\": want",
            ),
            ("[[peer]]\nuid = 1\nmax_calls = 0\n", "max_calls = 0"),
        ];
        for (text, want) in cases {
            let e = ServicePolicy::parse(text, "f").unwrap_err().to_string();
            assert!(e.starts_with("f: ") && e.contains(want), "{text:?}: {e}");
        }
        let e = ServicePolicy::parse("[[peer]]\nuid = 1\ncolour = 3\n", "f").unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        assert!(e.to_string().starts_with("f:3:1: "), "{e}");
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn a_toml_error_is_file_line_column_and_the_message_without_caret_art() {
        let e = ServicePolicy::parse("[[peer]]\nuid = 1\nlogin = \n", "/etc/p.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/p.toml:3:9: string values must be quoted, expected literal string"
        );
        // Columns count characters, not bytes.
        let e = ServicePolicy::parse("[[peer]]\nuid = 1\nlogin = \"é\" x\n", "p")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p:3:13: "), "{e}");
        assert!(!e.contains('|') && !e.contains('^'), "{e}");
        assert_eq!(line_column("ab\nçd", 5), (2, 2));
        assert_eq!(line_column("ab\nçd", 4), (2, 1), "inside ç: its start");
        assert_eq!(line_column("ab", 99), (1, 3));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn values_out_of_range_are_refused_with_one_line_each() {
        let cases = [
            (
                "max_pages_per_buffer = 18446744073709551615",
                "max_pages_per_buffer = 18446744073709551615: over",
            ),
            (
                "max_pages_per_buffer = 0",
                "max_pages_per_buffer = 0: under",
            ),
            (
                "max_total_pages = 18446744073709551615",
                "max_total_pages = 18446744073709551615: over",
            ),
            ("max_buffers = 4294967295", "max_buffers = 4294967295: over"),
            (
                "max_sessions = 4294967295",
                "max_sessions = 4294967295: over",
            ),
            ("max_calls = 100000", "max_calls = 100000: over"),
            ("max_vms = 0", "max_vms = 0: under"),
            ("max_vms = 70000", "max_vms = 70000: over"),
            (
                "max_call_bytes = 18446744073709551615",
                "max_call_bytes = 18446744073709551615: over",
            ),
            (
                "max_call_wait_us = 100001",
                "max_call_wait_us = 100001: over",
            ),
            (
                "max_shared_bytes = 1099511627777",
                "max_shared_bytes = 1099511627777: over",
            ),
        ];
        for (line, want) in cases {
            let text = format!("[[peer]]\nuid = 1\n{line}\n");
            let e = ServicePolicy::parse(&text, "f").unwrap_err().to_string();
            assert!(
                e.starts_with("f: peer rule 1: ") && e.contains(want),
                "{line}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_peer_limits_parse_and_default() {
        let p = ServicePolicy::parse(
            "[[peer]]\nuid = 1\nmax_vms = 2\nmax_call_bytes = 65536\nmax_call_wait_us = 0\n\
             share_memory = false\nmax_shared_bytes = 1073741824\n\
             [[peer]]\nuid = 2\n",
            "f",
        )
        .unwrap();
        let g = p.lookup(&unix(1, 0)).unwrap();
        assert_eq!(
            g.limits,
            PeerLimits {
                max_vms: 2,
                max_call_bytes: 65536,
                max_call_wait_us: 0,
                share_memory: false,
                max_shared_bytes: 1 << 30,
            }
        );
        assert_eq!(g.policy.quotas, Quotas::default());
        assert_eq!(p.lookup(&unix(2, 0)).unwrap().limits, PeerLimits::default());
    }

    #[test]
    fn a_policy_that_admits_nobody_says_so() {
        let empty = ServicePolicy::parse("", "f").unwrap();
        let e = empty.admits_nobody(true, true).unwrap();
        assert!(e.contains("no [[peer]] rule: nobody can connect"), "{e}");
        let tcp_only = ServicePolicy::parse("[[peer]]\ntcp = \"any\"\n", "f").unwrap();
        let e = tcp_only.admits_nobody(true, false).unwrap();
        assert!(
            e.contains("Unix sockets only") && e.contains("nobody"),
            "{e}"
        );
        assert_eq!(tcp_only.admits_nobody(true, true), None);
        let unix_only = ServicePolicy::owner(5);
        assert!(unix_only.admits_nobody(false, true).is_some());
        assert_eq!(unix_only.admits_nobody(true, false), None);
    }

    #[test]
    fn uuids_parse_in_their_usual_form_only() {
        let u = parse_uuid("8aaaf200-2450-11e4-abe2-0002a5d5c51b").unwrap();
        assert_eq!(u, optee_mediator::utee::ta::HELLO_UUID);
        assert_eq!(u.to_string(), "8aaaf200-2450-11e4-abe2-0002a5d5c51b");
        for bad in [
            "",
            "8aaaf2002450-11e4-abe2-0002a5d5c51b",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51",
            "8aaaf200-2450-11e4-abe2-0002a5d5c5zz",
            "+aaaf200-2450-11e4-abe2-0002a5d5c51b",
        ] {
            assert!(parse_uuid(bad).is_none(), "{bad}");
        }
    }
}
