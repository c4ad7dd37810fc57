// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest physical memory map and where the boot images go in RAM.
//!
//! | range | what |
//! |---|---|
//! | 0x0800_0000 + 64 KiB | GICv3 distributor |
//! | 0x080A_0000 + 128 KiB per vCPU | GICv3 redistributors |
//! | 0x0900_0000 + 4 KiB | 16550 UART, SPI 1 |
//! | 0x4000_0000 + RAM | RAM: kernel at text_offset (image_size kept free), initrd and DTB at the top (below 32 GiB) |

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
/// Its registers (reg-shift 0: one byte each); the rest of the window reads
/// as zero and ignores writes.
pub const UART_REGS: u64 = 8;
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
/// The initrd must lie in a 1 GiB aligned window of at most 32 GiB that
/// also covers the kernel (arm64 booting.rst): the kernel is at
/// [`RAM_BASE`] (1 GiB aligned), so the initrd (and, for simplicity, the
/// device tree) stay below `RAM_BASE + BOOT_WINDOW`.
pub const BOOT_WINDOW: u64 = 32 << 30;

/// The size of the arm64 Image header (booting.rst, "Call the kernel image").
pub const IMAGE_HEADER_SIZE: usize = 64;
/// The header's magic, "ARM\x64", at byte 56.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// The text_offset of an Image whose image_size is 0 (before Linux 3.17).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// Room kept for an Image whose header does not state its effective size
/// (image_size 0, before Linux 3.17): image, bss and early page tables.
pub const LEGACY_KERNEL_ROOM: u64 = 32 << 20;

/// What the arm64 Image header says about where the kernel goes and how
/// much RAM from there it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelImage {
    /// Offset of the image from the 2 MiB aligned base ([`RAM_BASE`]).
    pub text_offset: u64,
    /// Bytes from the start of the image that must be free for the kernel:
    /// the header's image_size (which covers the bss), at least the file.
    pub reserve: u64,
}

/// Why a file is not a usable arm64 Image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Shorter than the header.
    #[error("{0} bytes is too short for an arm64 Image header ({IMAGE_HEADER_SIZE} bytes)")]
    TooShort(usize),
    /// No "ARM\x64" magic.
    #[error(
        "no arm64 Image magic (found {0:#010x} at byte 56, want {IMAGE_MAGIC:#010x}): a \
         compressed or ELF kernel? arch/arm64/boot/Image is needed"
    )]
    BadMagic(u32),
    /// The text_offset or image_size would wrap.
    #[error("header text_offset {text_offset:#x} and image_size {image_size:#x} overflow")]
    Overflow {
        /// The header's text_offset.
        text_offset: u64,
        /// The header's image_size.
        image_size: u64,
    },
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Reads the arm64 Image header (the first bytes of the file, at least
/// [`IMAGE_HEADER_SIZE`]) of a file of `file_size` bytes.
pub fn parse_image_header(header: &[u8], file_size: u64) -> Result<KernelImage, ImageError> {
    if header.len() < IMAGE_HEADER_SIZE {
        return Err(ImageError::TooShort(header.len()));
    }
    let magic = u32::from_le_bytes([header[56], header[57], header[58], header[59]]);
    if magic != IMAGE_MAGIC {
        return Err(ImageError::BadMagic(magic));
    }
    let (text_offset, image_size) = (le64(header, 8), le64(header, 16));
    let (text_offset, reserve) = if image_size == 0 {
        (LEGACY_TEXT_OFFSET, file_size.max(LEGACY_KERNEL_ROOM))
    } else {
        (text_offset, file_size.max(image_size))
    };
    if RAM_BASE
        .checked_add(text_offset)
        .and_then(|s| s.checked_add(reserve))
        .is_none()
    {
        return Err(ImageError::Overflow {
            text_offset,
            image_size,
        });
    }
    Ok(KernelImage {
        text_offset,
        reserve,
    })
}

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
    /// Guest address of the kernel image (its entry point).
    pub kernel: u64,
    /// End of the RAM kept for the kernel (image, bss, early page tables).
    pub kernel_end: u64,
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
        "{mem_mib} MiB of guest RAM cannot hold the kernel ({kernel_kib} KiB from RAM's start: its \
         Image header's text_offset and image_size), an initrd of {initrd} bytes and the device \
         tree ({fdt} MiB): give the guest at least {need_mib} MiB (--memory)"
    )]
    TooSmall {
        /// RAM, MiB.
        mem_mib: u64,
        /// RAM the kernel needs from [`RAM_BASE`], KiB.
        kernel_kib: u64,
        /// Initrd size.
        initrd: u64,
        /// Room kept for the device tree, MiB.
        fdt: u64,
        /// The least RAM that holds them, MiB.
        need_mib: u64,
    },
}

const PAGE: u64 = 0x1000;

fn page_up(v: u64) -> u64 {
    v.saturating_add(PAGE - 1) & !(PAGE - 1)
}

/// Places the kernel at [`RAM_BASE`] + text_offset with its image_size
/// kept free, the device tree in the last 2 MiB of RAM (of the boot window:
/// [`BOOT_WINDOW`]) and the initrd (page aligned) right below it, above the
/// kernel.
pub fn place(
    mem_size: u64,
    kernel: KernelImage,
    initrd_size: Option<u64>,
) -> Result<Placement, LayoutError> {
    let kernel_room = kernel.text_offset.saturating_add(kernel.reserve);
    let too_small = || {
        let need = page_up(kernel_room)
            .saturating_add(page_up(initrd_size.unwrap_or(0)))
            .saturating_add(FDT_MAX_SIZE);
        LayoutError::TooSmall {
            mem_mib: mem_size >> 20,
            kernel_kib: kernel_room.div_ceil(1 << 10),
            initrd: initrd_size.unwrap_or(0),
            fdt: FDT_MAX_SIZE >> 20,
            need_mib: need.div_ceil(1 << 20).max(MIN_MEM_MIB),
        }
    };
    let end = RAM_BASE.checked_add(mem_size).ok_or_else(too_small)?;
    let top = end.min(RAM_BASE + BOOT_WINDOW);
    let kernel_end = RAM_BASE.checked_add(kernel_room).ok_or_else(too_small)?;
    let fdt = top.checked_sub(FDT_MAX_SIZE).ok_or_else(too_small)?;
    let floor = page_up(kernel_end);
    let initrd = match initrd_size {
        None => None,
        Some(size) => {
            let start = fdt.checked_sub(size).ok_or_else(too_small)? & !(PAGE - 1);
            if start < floor {
                return Err(too_small());
            }
            Some((start, size))
        }
    };
    if fdt < floor {
        return Err(too_small());
    }
    Ok(Placement {
        kernel: RAM_BASE + kernel.text_offset,
        kernel_end,
        initrd,
        fdt,
    })
}

/// What a guest MMIO access (outside RAM and the vGIC) reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioTarget {
    /// A 16550 register, by offset.
    Uart(u8),
    /// The UART's window beyond its registers: reads zero, writes ignored.
    UartUnused,
    /// No device: reads zero, writes ignored, logged.
    Nothing,
}

/// The device at `addr`.
pub fn mmio_target(addr: u64) -> MmioTarget {
    match addr.checked_sub(UART_BASE) {
        Some(off) if off < UART_REGS => MmioTarget::Uart(off as u8),
        Some(off) if off < UART_SIZE => MmioTarget::UartUnused,
        _ => MmioTarget::Nothing,
    }
}

/// The redistributor region of `vcpus` vCPUs.
pub fn gic_redist_size(vcpus: u8) -> u64 {
    GIC_REDIST_SIZE_PER_CPU * u64::from(vcpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as `make Image` writes it.
    fn header(text_offset: u64, image_size: u64, magic: u32) -> [u8; IMAGE_HEADER_SIZE] {
        let mut h = [0u8; IMAGE_HEADER_SIZE];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&0xau64.to_le_bytes());
        h[56..60].copy_from_slice(&magic.to_le_bytes());
        h
    }

    /// A 6 MiB kernel whose bss takes it to 40 MiB.
    const KERNEL: KernelImage = KernelImage {
        text_offset: 0,
        reserve: 40 << 20,
    };

    #[test]
    fn the_image_header_gives_text_offset_and_image_size() {
        let k = parse_image_header(&header(0, 40 << 20, IMAGE_MAGIC), 6 << 20).unwrap();
        assert_eq!(k, KERNEL);
        let k = parse_image_header(&header(0x8_0000, 0x1234_5000, IMAGE_MAGIC), 100).unwrap();
        assert_eq!((k.text_offset, k.reserve), (0x8_0000, 0x1234_5000));
        // A file longer than image_size keeps at least the file.
        let k = parse_image_header(&header(0, 1 << 20, IMAGE_MAGIC), 3 << 20).unwrap();
        assert_eq!(k.reserve, 3 << 20);
    }

    #[test]
    fn an_image_size_of_0_means_the_old_text_offset_and_a_fixed_room() {
        let k = parse_image_header(&header(0x1234, 0, IMAGE_MAGIC), 9 << 20).unwrap();
        assert_eq!(
            (k.text_offset, k.reserve),
            (LEGACY_TEXT_OFFSET, LEGACY_KERNEL_ROOM)
        );
        let k = parse_image_header(&header(0, 0, IMAGE_MAGIC), 50 << 20).unwrap();
        assert_eq!(k.reserve, 50 << 20);
    }

    #[test]
    fn not_an_image_is_refused() {
        let e = parse_image_header(&header(0, 1 << 20, 0x464c_457f), 1 << 20).unwrap_err();
        assert_eq!(e, ImageError::BadMagic(0x464c_457f));
        assert!(e.to_string().contains("arch/arm64/boot/Image"), "{e}");
        let h = header(0, 1 << 20, IMAGE_MAGIC);
        assert_eq!(
            parse_image_header(&h[..63], 63),
            Err(ImageError::TooShort(63))
        );
        assert!(matches!(
            parse_image_header(&header(u64::MAX - 5, 1 << 20, IMAGE_MAGIC), 1 << 20),
            Err(ImageError::Overflow { .. })
        ));
    }

    #[test]
    fn fdt_sits_in_the_last_2_mib_and_the_initrd_below_it_page_aligned() {
        let p = place(256 << 20, KERNEL, Some(3_000_001)).unwrap();
        assert_eq!(p.fdt, RAM_BASE + (256 << 20) - FDT_MAX_SIZE);
        let (start, size) = p.initrd.unwrap();
        assert_eq!(size, 3_000_001);
        assert_eq!(start % 4096, 0);
        assert!(start + size <= p.fdt);
        assert!(p.fdt - (start + size) < 4096);
        assert_eq!(p.fdt % 8, 0);
        assert_eq!((p.kernel, p.kernel_end), (RAM_BASE, RAM_BASE + (40 << 20)));
    }

    #[test]
    fn the_kernel_goes_at_text_offset_and_keeps_its_image_size() {
        let k = KernelImage {
            text_offset: 0x8_0000,
            reserve: 30 << 20,
        };
        let p = place(64 << 20, k, None).unwrap();
        assert_eq!(p.kernel, RAM_BASE + 0x8_0000);
        assert_eq!(p.kernel_end, RAM_BASE + 0x8_0000 + (30 << 20));
        // The initrd starts above the kernel's bss, not above its file.
        let p = place(64 << 20, KERNEL, Some(20 << 20)).unwrap();
        assert!(p.initrd.unwrap().0 >= p.kernel_end);
        let e = place(64 << 20, KERNEL, Some(23 << 20)).unwrap_err();
        assert!(
            e.to_string().contains("give the guest at least 65 MiB"),
            "{e}"
        );
        assert!(place(65 << 20, KERNEL, Some(23 << 20)).is_ok());
    }

    #[test]
    fn no_initrd_places_only_the_fdt() {
        let p = place(64 << 20, KERNEL, None).unwrap();
        assert_eq!(p.initrd, None);
    }

    #[test]
    fn a_kernel_larger_than_ram_is_a_clear_error() {
        let big = KernelImage {
            text_offset: 0,
            reserve: 100 << 20,
        };
        let e = place(64 << 20, big, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("64 MiB of guest RAM cannot hold the kernel"),
            "{msg}"
        );
        assert!(msg.contains("(102400 KiB from RAM's start"), "{msg}");
        assert!(msg.contains("give the guest at least 102 MiB"), "{msg}");
        assert!(place(102 << 20, big, None).is_ok());
        assert!(place(101 << 20, big, None).is_err());
    }

    #[test]
    fn an_initrd_that_would_overlap_the_kernel_is_refused() {
        let e = place(64 << 20, KERNEL, Some(40 << 20)).unwrap_err();
        assert!(e.to_string().contains("64 MiB of guest RAM"), "{e}");
        assert!(place(16 << 20, KERNEL, None).is_err());
        assert!(place(u64::MAX, KERNEL, None).is_err());
    }

    #[test]
    fn initrd_and_fdt_stay_in_the_32_gib_boot_window() {
        let p = place(MAX_MEM_MIB << 20, KERNEL, Some(1 << 20)).unwrap();
        assert_eq!(p.fdt, RAM_BASE + BOOT_WINDOW - FDT_MAX_SIZE);
        assert!(p.initrd.unwrap().0 + (1 << 20) <= RAM_BASE + BOOT_WINDOW);
        const { assert!(RAM_BASE.is_multiple_of(1 << 30)) };
    }

    #[test]
    fn devices_do_not_overlap_each_other_or_ram() {
        let redist_end = GIC_REDIST_BASE + gic_redist_size(MAX_VCPUS);
        const {
            assert!(GIC_DIST_BASE + GIC_DIST_SIZE <= GIC_REDIST_BASE);
            assert!(UART_BASE + UART_SIZE <= RAM_BASE);
            assert!(RAM_BASE.is_multiple_of(0x20_0000));
            assert!(RAM_BASE + (MAX_MEM_MIB << 20) <= 1 << 40);
        }
        assert!(redist_end <= UART_BASE);
    }

    #[test]
    fn mmio_reaches_the_16550_registers_only_and_never_aliases_them() {
        assert_eq!(mmio_target(UART_BASE), MmioTarget::Uart(0));
        assert_eq!(mmio_target(UART_BASE + 7), MmioTarget::Uart(7));
        assert_eq!(mmio_target(UART_BASE + 8), MmioTarget::UartUnused);
        // `off as u8` would have made this the data register.
        assert_eq!(mmio_target(UART_BASE + 0x100), MmioTarget::UartUnused);
        assert_eq!(
            mmio_target(UART_BASE + UART_SIZE - 1),
            MmioTarget::UartUnused
        );
        assert_eq!(mmio_target(UART_BASE + UART_SIZE), MmioTarget::Nothing);
        assert_eq!(mmio_target(UART_BASE - 1), MmioTarget::Nothing);
        assert_eq!(mmio_target(0), MmioTarget::Nothing);
        assert_eq!(mmio_target(u64::MAX), MmioTarget::Nothing);
    }

    #[test]
    fn default_cmdline_names_the_16550_console() {
        let c = default_cmdline();
        assert!(c.contains("console=ttyS0"));
        assert!(c.contains("earlycon=uart,mmio,0x9000000"));
    }
}
