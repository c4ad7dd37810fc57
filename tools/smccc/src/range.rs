// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Contiguous ranges of function ids, as KVM's SMCCC filter takes them.

use crate::id::{CallKind, Convention, FunctionId};

/// `count` function ids starting at `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FunctionRange {
    /// The first id.
    pub base: u32,
    /// How many ids, at least one.
    pub count: u32,
}

impl FunctionRange {
    /// The ids of owners `first..=last` for one kind and convention.
    pub const fn owners(kind: CallKind, conv: Convention, first: u8, last: u8) -> Self {
        let base = FunctionId::new(kind, conv, first, 0).0;
        FunctionRange {
            base,
            count: ((last - first + 1) as u32) << 24,
        }
    }

    /// The first id of the range.
    pub const fn first(self) -> FunctionId {
        FunctionId(self.base)
    }

    /// The last id of the range.
    pub const fn last(self) -> FunctionId {
        FunctionId(self.base + (self.count - 1))
    }

    /// Whether `id` is in the range.
    pub const fn contains(self, id: FunctionId) -> bool {
        id.0 >= self.base && id.0 - self.base < self.count
    }
}

const KINDS: [(CallKind, Convention); 4] = [
    (CallKind::Yielding, Convention::Smc32),
    (CallKind::Yielding, Convention::Smc64),
    (CallKind::Fast, Convention::Smc32),
    (CallKind::Fast, Convention::Smc64),
];

const fn owner_ranges(first: u8, last: u8) -> [FunctionRange; 4] {
    [
        FunctionRange::owners(KINDS[0].0, KINDS[0].1, first, last),
        FunctionRange::owners(KINDS[1].0, KINDS[1].1, first, last),
        FunctionRange::owners(KINDS[2].0, KINDS[2].1, first, last),
        FunctionRange::owners(KINDS[3].0, KINDS[3].1, first, last),
    ]
}

/// Trusted OS calls (owners 50..=63): yielding SMC32, yielding SMC64, fast
/// SMC32, fast SMC64. The ranges a VMM forwards to reach a Trusted OS.
pub const TRUSTED_OS_RANGES: [FunctionRange; 4] = owner_ranges(50, 63);

/// Trusted Application calls (owners 48..=49), in the same order.
pub const TRUSTED_APP_RANGES: [FunctionRange; 4] = owner_ranges(48, 49);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Owner;

    #[test]
    fn trusted_os_ranges_match_the_specification() {
        let got: Vec<(u32, u32)> = TRUSTED_OS_RANGES
            .iter()
            .map(|r| (r.base, r.count))
            .collect();
        assert_eq!(
            got,
            [
                (0x3200_0000, 0x0E00_0000),
                (0x7200_0000, 0x0E00_0000),
                (0xB200_0000, 0x0E00_0000),
                (0xF200_0000, 0x0E00_0000),
            ]
        );
    }

    #[test]
    fn trusted_app_ranges_match_the_specification() {
        let got: Vec<(u32, u32)> = TRUSTED_APP_RANGES
            .iter()
            .map(|r| (r.base, r.count))
            .collect();
        assert_eq!(
            got,
            [
                (0x3000_0000, 0x0200_0000),
                (0x7000_0000, 0x0200_0000),
                (0xB000_0000, 0x0200_0000),
                (0xF000_0000, 0x0200_0000),
            ]
        );
    }

    #[test]
    fn range_ends_belong_to_their_owner_class_and_neighbours_do_not() {
        for r in TRUSTED_OS_RANGES {
            assert_eq!(r.first().owner(), Owner::TrustedOs(50));
            assert_eq!(r.last().owner(), Owner::TrustedOs(63));
            assert!(r.contains(r.first()) && r.contains(r.last()));
            assert!(!r.contains(FunctionId(r.base - 1)));
            assert!(!r.contains(FunctionId(r.last().0.wrapping_add(1))));
        }
        for r in TRUSTED_APP_RANGES {
            assert_eq!(r.first().owner(), Owner::TrustedApp(48));
            assert_eq!(r.last().owner(), Owner::TrustedApp(49));
        }
    }
}
