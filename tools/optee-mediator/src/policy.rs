// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Per-VM policy and quotas. The defaults are Xen's.

use std::fmt;

/// A UUID as the 16 octets of RFC 4122 (big-endian fields), the form
/// OP-TEE messages carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The nil UUID.
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A UUID from its fields, as UUID_INIT() in the kernel.
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Uuid {
        let a = a.to_be_bytes();
        let b = b.to_be_bytes();
        let c = c.to_be_bytes();
        Uuid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Resource limits of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Concurrent standard calls (threads, parked ones included); `None`
    /// means the backend's thread count. Over it: ETHREAD_LIMIT.
    pub max_calls: Option<u32>,
    /// Shared buffers alive at once: registered, temporary and RPC-allocated
    /// (Xen: 16).
    pub max_buffers: u32,
    /// Pages of one buffer (Xen: 129, enough for 512 KiB at any offset).
    pub max_pages_per_buffer: u64,
    /// Pages of all buffers together (Xen: 16384).
    pub max_total_pages: u64,
    /// Open sessions (Xen has none; 64 by default).
    pub max_sessions: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_calls: None,
            max_buffers: 16,
            max_pages_per_buffer: 129,
            max_total_pages: 16384,
            max_sessions: 64,
        }
    }
}

/// How the login a guest claims when opening a session is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginPolicy {
    /// Passed to the TEE as the guest sent it. The guest's kernel is the
    /// REE kernel of its own world.
    #[default]
    PassThrough,
    /// Every login becomes PUBLIC with the nil client UUID.
    ForcePublic,
    /// REE kernel logins are refused (ACCESS_DENIED); others pass.
    DenyKernel,
}

/// Which trusted applications a VM may open sessions with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TaFilter {
    /// Any.
    #[default]
    Any,
    /// Only these.
    Only(Vec<Uuid>),
}

impl TaFilter {
    /// Whether `ta` may be opened.
    pub fn allows(&self, ta: &Uuid) -> bool {
        match self {
            TaFilter::Any => true,
            TaFilter::Only(list) => list.contains(ta),
        }
    }
}

/// Refusal log lines a VM may cause each second by default; the others are
/// counted and reported in one line when logging resumes.
pub const DEFAULT_REFUSAL_LOGS_PER_SECOND: u32 = 10;

/// The policy of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Limits.
    pub quotas: Quotas,
    /// Openable trusted applications.
    pub tas: TaFilter,
    /// Login treatment.
    pub login: LoginPolicy,
    /// Refusals logged (warn) each second at most; the guest decides how
    /// often it is refused, this bounds what it makes the host log.
    pub refusal_logs_per_second: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            quotas: Quotas::default(),
            tas: TaFilter::default(),
            login: LoginPolicy::default(),
            refusal_logs_per_second: DEFAULT_REFUSAL_LOGS_PER_SECOND,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_quotas_are_xens() {
        let q = Quotas::default();
        assert_eq!(
            (q.max_buffers, q.max_pages_per_buffer, q.max_total_pages),
            (16, 129, 16384)
        );
        assert_eq!(q.max_calls, None);
    }

    #[test]
    fn uuid_displays_in_rfc4122_form() {
        let u = Uuid::from_fields(
            0x7011a688,
            0xddde,
            0x4053,
            [0xa5, 0xa9, 0x7b, 0x3c, 0x4d, 0xdf, 0x13, 0xb8],
        );
        assert_eq!(u.to_string(), "7011a688-ddde-4053-a5a9-7b3c4ddf13b8");
    }

    #[test]
    fn ta_filter_only_allows_listed_uuids() {
        let a = Uuid([1; 16]);
        let f = TaFilter::Only(vec![a]);
        assert!(f.allows(&a));
        assert!(!f.allows(&Uuid::NIL));
        assert!(TaFilter::Any.allows(&Uuid::NIL));
    }
}
