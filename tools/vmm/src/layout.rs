// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest physical memory map and where the boot images go in RAM.
//!
//! | range | what |
//! |---|---|
//! | 0x0800_0000 + 64 KiB | GICv3 distributor |
//! | 0x080A_0000 + 128 KiB per vCPU | GICv3 redistributors |
//! | 0x0900_0000 + 4 KiB | 16550 UART, SPI 1 |
//! | 0x4000_0000 + RAM | RAM: kernel at the start, initrd and DTB at the top |

/// GICv3 distributor.
pub const GIC_DIST_BASE: u64 = 0x0800_0000;
/// Its size.
pub const GIC_DIST_SIZE: u64 = 0x1_0000;
/// GICv3 redistributors, one 128 KiB frame pair per vCPU.
pub const GIC_REDIST_BASE: u64 = 0x080A_0000;
/// One vCPU's redistributor.
pub const GIC_REDIST_SIZE_PER_CPU: u64 = 0x2_0000;
/// Interrupt lines of the vGIC, the 32 private ones included.
pub const GIC_NR_IRQS: u32 = 128;

/// The 16550 UART.
pub const UART_BASE: u64 = 0x0900_0000;
/// Its MMIO window.
pub const UART_SIZE: u64 = 0x1000;
/// Its SPI (KVM irqfd GSI; INTID 32 + 1).
pub const UART_SPI: u32 = 1;
/// Its input clock (the device tree's clock-frequency).
pub const UART_CLOCK: u32 = 1_843_200;

/// Start of RAM (2 MiB aligned, as the arm64 boot protocol wants).
pub const RAM_BASE: u64 = 0x4000_0000;
/// Space kept at the top of RAM for the device tree (its maximum size).
pub const FDT_MAX_SIZE: u64 = 0x20_0000;
/// Smallest and largest guest RAM, MiB.
pub const MIN_MEM_MIB: u64 = 32;
/// Largest guest RAM, MiB (the IPA space stays under 40 bits).
pub const MAX_MEM_MIB: u64 = 64 * 1024;
/// Most vCPUs (the kernel config the bench builds has NR_CPUS=8).
pub const MAX_VCPUS: u8 = 8;
/// Room kept after the start of the kernel image for the kernel itself
/// (image, bss, early page tables) before the initrd may start.
pub const KERNEL_ROOM: u64 = 32 << 20;

/// PSTATE at boot: EL1h with D, A, I, F masked.
pub const BOOT_PSTATE: u64 = 0x3c5;

/// The default kernel command line: the 16550 as console (and early
/// console), a quiet boot (each line of L2 serial output is slow), reboot
/// (reported as an error by the VMM) on panic.
pub fn default_cmdline() -> String {
    format!("console=ttyS0 earlycon=uart,mmio,{UART_BASE:#x} quiet panic=-1")
}

/// Where the boot images are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Guest address of the initrd (if any) and its size.
    pub initrd: Option<(u64, u64)>,
    /// Guest address of the device tree.
    pub fdt: u64,
}

/// Why the images do not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// RAM too small for kernel, initrd and device tree.
    #[error(
        "{mem_mib} MiB of guest RAM cannot hold the kernel ({kernel_room} MiB kept), an initrd of \
         {initrd} bytes and the device tree ({fdt} MiB): give the guest more memory"
    )]
    TooSmall {
        /// RAM, MiB.
        mem_mib: u64,
        /// Room kept for the kernel, MiB.
        kernel_room: u64,
        /// Initrd size.
        initrd: u64,
        /// Room kept for the device tree, MiB.
        fdt: u64,
    },
}

/// Places the device tree in the last 2 MiB of RAM and the initrd
/// (page aligned) right below it, above the room kept for the kernel.
pub fn place(mem_size: u64, initrd_size: Option<u64>) -> Result<Placement, LayoutError> {
    let too_small = || LayoutError::TooSmall {
        mem_mib: mem_size >> 20,
        kernel_room: KERNEL_ROOM >> 20,
        initrd: initrd_size.unwrap_or(0),
        fdt: FDT_MAX_SIZE >> 20,
    };
    let end = RAM_BASE.checked_add(mem_size).ok_or_else(too_small)?;
    let fdt = end.checked_sub(FDT_MAX_SIZE).ok_or_else(too_small)?;
    let floor = RAM_BASE + KERNEL_ROOM;
    let initrd = match initrd_size {
        None => None,
        Some(size) => {
            let start = fdt.checked_sub(size).ok_or_else(too_small)? & !0xfff;
            if start < floor {
                return Err(too_small());
            }
            Some((start, size))
        }
    };
    if fdt < floor {
        return Err(too_small());
    }
    Ok(Placement { initrd, fdt })
}

/// The redistributor region of `vcpus` vCPUs.
pub fn gic_redist_size(vcpus: u8) -> u64 {
    GIC_REDIST_SIZE_PER_CPU * u64::from(vcpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdt_sits_in_the_last_2_mib_and_the_initrd_below_it_page_aligned() {
        let p = place(256 << 20, Some(3_000_001)).unwrap();
        assert_eq!(p.fdt, RAM_BASE + (256 << 20) - FDT_MAX_SIZE);
        let (start, size) = p.initrd.unwrap();
        assert_eq!(size, 3_000_001);
        assert_eq!(start % 4096, 0);
        assert!(start + size <= p.fdt);
        assert!(p.fdt - (start + size) < 4096);
        assert_eq!(p.fdt % 8, 0);
    }

    #[test]
    fn no_initrd_places_only_the_fdt() {
        let p = place(64 << 20, None).unwrap();
        assert_eq!(p.initrd, None);
    }

    #[test]
    fn an_initrd_that_would_overlap_the_kernel_is_refused() {
        let e = place(64 << 20, Some(40 << 20)).unwrap_err();
        assert!(e.to_string().contains("64 MiB of guest RAM"), "{e}");
        assert!(place(16 << 20, None).is_err());
        assert!(place(u64::MAX, None).is_err());
    }

    #[test]
    fn devices_do_not_overlap_each_other_or_ram() {
        let redist_end = GIC_REDIST_BASE + gic_redist_size(MAX_VCPUS);
        const {
            assert!(GIC_DIST_BASE + GIC_DIST_SIZE <= GIC_REDIST_BASE);
            assert!(UART_BASE + UART_SIZE <= RAM_BASE);
            assert!(RAM_BASE % 0x20_0000 == 0);
            assert!(RAM_BASE + (MAX_MEM_MIB << 20) <= 1 << 40);
        }
        assert!(redist_end <= UART_BASE);
    }

    #[test]
    fn default_cmdline_names_the_16550_console() {
        let c = default_cmdline();
        assert!(c.contains("console=ttyS0"));
        assert!(c.contains("earlycon=uart,mmio,0x9000000"));
    }
}
