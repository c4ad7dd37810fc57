// SPDX-License-Identifier: Apache-2.0 OR MIT
//! SMCCC function identifiers: the fields of w0.

/// Bit 31: fast call (1) or yielding call (0).
const FAST_BIT: u32 = 1 << 31;
/// Bit 30: SMC64/HVC64 calling convention (1) or SMC32/HVC32 (0).
const SMC64_BIT: u32 = 1 << 30;
/// Bits 29:24: the owning entity.
const OWNER_SHIFT: u32 = 24;
const OWNER_MASK: u32 = 0x3f;
/// Bits 15:0: the function number (fast calls).
const NUMBER_MASK: u32 = 0xffff;

/// The instruction the caller used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conduit {
    /// `smc #0`.
    Smc,
    /// `hvc #0`.
    Hvc,
}

/// Fast or yielding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Atomic: runs to completion, interrupts masked.
    Fast,
    /// Yielding (standard): may be preempted and resumed.
    Yielding,
}

/// Register width of the call's arguments and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Convention {
    /// SMC32/HVC32: w0..w7, results truncated to 32 bits.
    Smc32,
    /// SMC64/HVC64: x0..x17.
    Smc64,
}

/// The owning entity of a call (bits 29:24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// 0: Arm architecture calls.
    Arch,
    /// 1: CPU service calls.
    Cpu,
    /// 2: SiP service calls.
    Sip,
    /// 3: OEM service calls.
    Oem,
    /// 4: standard secure service calls (PSCI and others).
    Standard,
    /// 5: standard hypervisor service calls.
    StandardHyp,
    /// 6: vendor specific hypervisor service calls.
    VendorHyp,
    /// 7..=47: reserved for future use.
    Reserved(u8),
    /// 48..=49: Trusted Application calls.
    TrustedApp(u8),
    /// 50..=63: Trusted OS calls.
    TrustedOs(u8),
}

/// A 32-bit SMCCC function identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(pub u32);

impl FunctionId {
    /// Builds an id from its fields. `owner` is masked to 6 bits.
    pub const fn new(kind: CallKind, conv: Convention, owner: u8, number: u16) -> Self {
        let mut v = ((owner as u32) & OWNER_MASK) << OWNER_SHIFT | number as u32;
        if matches!(kind, CallKind::Fast) {
            v |= FAST_BIT;
        }
        if matches!(conv, Convention::Smc64) {
            v |= SMC64_BIT;
        }
        FunctionId(v)
    }

    /// The function id of a call whose x0 holds `x0`: SMCCC ignores `x0[63:32]`.
    pub const fn from_x0(x0: u64) -> Self {
        FunctionId(x0 as u32)
    }

    /// Fast or yielding.
    pub const fn kind(self) -> CallKind {
        if self.0 & FAST_BIT != 0 {
            CallKind::Fast
        } else {
            CallKind::Yielding
        }
    }

    /// SMC32 or SMC64.
    pub const fn convention(self) -> Convention {
        if self.0 & SMC64_BIT != 0 {
            Convention::Smc64
        } else {
            Convention::Smc32
        }
    }

    /// The raw owner number (0..=63).
    pub const fn owner_number(self) -> u8 {
        ((self.0 >> OWNER_SHIFT) & OWNER_MASK) as u8
    }

    /// The owning entity.
    pub const fn owner(self) -> Owner {
        match self.owner_number() {
            0 => Owner::Arch,
            1 => Owner::Cpu,
            2 => Owner::Sip,
            3 => Owner::Oem,
            4 => Owner::Standard,
            5 => Owner::StandardHyp,
            6 => Owner::VendorHyp,
            n @ 48..=49 => Owner::TrustedApp(n),
            n @ 50..=63 => Owner::TrustedOs(n),
            n => Owner::Reserved(n),
        }
    }

    /// The function number (bits 15:0).
    pub const fn number(self) -> u16 {
        (self.0 & NUMBER_MASK) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_an_optee_fast_call() {
        let id = FunctionId(0xB200_0009);
        assert_eq!(id.kind(), CallKind::Fast);
        assert_eq!(id.convention(), Convention::Smc32);
        assert_eq!(id.owner(), Owner::TrustedOs(50));
        assert_eq!(id.number(), 9);
    }

    #[test]
    fn fields_of_a_yielding_smc64_trusted_app_call() {
        let id = FunctionId(0x7100_0001);
        assert_eq!(id.kind(), CallKind::Yielding);
        assert_eq!(id.convention(), Convention::Smc64);
        assert_eq!(id.owner(), Owner::TrustedApp(49));
    }

    #[test]
    fn new_round_trips_the_fields() {
        let id = FunctionId::new(CallKind::Fast, Convention::Smc64, 63, 0xffff);
        assert_eq!(id, FunctionId(0xFF00_FFFF));
        assert_eq!(
            FunctionId::new(CallKind::Fast, Convention::Smc32, 4, 8),
            FunctionId(crate::std_call::PSCI_SYSTEM_OFF)
        );
    }

    #[test]
    fn from_x0_ignores_the_upper_half() {
        assert_eq!(
            FunctionId::from_x0(0xdead_beef_b200_0001),
            FunctionId(0xB200_0001)
        );
    }

    #[test]
    fn owner_classes_cover_every_owner_number() {
        for n in 0u8..64 {
            let id = FunctionId::new(CallKind::Fast, Convention::Smc32, n, 0);
            let owner = id.owner();
            match n {
                7..=47 => assert_eq!(owner, Owner::Reserved(n)),
                48..=49 => assert_eq!(owner, Owner::TrustedApp(n)),
                50..=63 => assert_eq!(owner, Owner::TrustedOs(n)),
                _ => assert!(!matches!(
                    owner,
                    Owner::Reserved(_) | Owner::TrustedApp(_) | Owner::TrustedOs(_)
                )),
            }
        }
    }
}
