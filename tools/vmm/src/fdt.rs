// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest's device tree: memory, vCPUs with PSCI, the architected timer,
//! the GICv3, the 16550 console, the boot arguments and initrd, and
//! `firmware/optee` (`linaro,optee-tz`) with the configured conduit.

use vm_fdt::{FdtWriter, FdtWriterResult};

use crate::args::Conduit;
use crate::layout::{
    gic_redist_size, GIC_DIST_BASE, GIC_DIST_SIZE, GIC_REDIST_BASE, RAM_BASE, UART_BASE,
    UART_CLOCK, UART_SIZE, UART_SPI,
};

/// The GIC's phandle.
const GIC_PHANDLE: u32 = 1;
/// GIC interrupt specifier types.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Interrupt trigger flags.
const IRQ_TYPE_EDGE_RISING: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// The architected timer's PPIs: secure physical, non-secure physical,
/// virtual, hypervisor.
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// MPIDR_EL1 affinity bits (the `reg` of a cpu node).
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// What the device tree describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtConfig {
    /// Guest RAM in bytes (at [`RAM_BASE`]).
    pub mem_size: u64,
    /// MPIDR_EL1 of each vCPU, in vCPU order.
    pub mpidrs: Vec<u64>,
    /// Kernel command line.
    pub cmdline: String,
    /// Initrd address and size.
    pub initrd: Option<(u64, u64)>,
    /// The OP-TEE node's conduit; `None` leaves the node out.
    pub optee: Option<Conduit>,
}

/// Builds the flattened device tree blob.
pub fn build(cfg: &FdtConfig) -> FdtWriterResult<Vec<u8>> {
    let mut f = FdtWriter::new()?;
    let root = f.begin_node("")?;
    f.property_string("compatible", "linux,dummy-virt")?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 2)?;
    f.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = f.begin_node("chosen")?;
    f.property_string("bootargs", &cfg.cmdline)?;
    f.property_string("stdout-path", &format!("/uart@{UART_BASE:x}"))?;
    if let Some((start, size)) = cfg.initrd {
        f.property_u64("linux,initrd-start", start)?;
        f.property_u64("linux,initrd-end", start + size)?;
    }
    f.end_node(chosen)?;

    let memory = f.begin_node(&format!("memory@{RAM_BASE:x}"))?;
    f.property_string("device_type", "memory")?;
    f.property_array_u64("reg", &[RAM_BASE, cfg.mem_size])?;
    f.end_node(memory)?;

    let cpus = f.begin_node("cpus")?;
    f.property_u32("#address-cells", 2)?;
    f.property_u32("#size-cells", 0)?;
    for mpidr in &cfg.mpidrs {
        let reg = mpidr & MPIDR_AFFINITY;
        let cpu = f.begin_node(&format!("cpu@{reg:x}"))?;
        f.property_string("device_type", "cpu")?;
        f.property_string("compatible", "arm,arm-v8")?;
        f.property_string("enable-method", "psci")?;
        f.property_u64("reg", reg)?;
        f.end_node(cpu)?;
    }
    f.end_node(cpus)?;

    let psci = f.begin_node("psci")?;
    f.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    f.property_string("method", "hvc")?;
    f.end_node(psci)?;

    let timer = f.begin_node("timer")?;
    f.property_string("compatible", "arm,armv8-timer")?;
    f.property_null("always-on")?;
    let irqs: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|p| [GIC_PPI, *p, IRQ_TYPE_LEVEL_HIGH])
        .collect();
    f.property_array_u32("interrupts", &irqs)?;
    f.end_node(timer)?;

    let gic = f.begin_node(&format!("intc@{GIC_DIST_BASE:x}"))?;
    f.property_string("compatible", "arm,gic-v3")?;
    f.property_null("interrupt-controller")?;
    f.property_u32("#interrupt-cells", 3)?;
    f.property_array_u64(
        "reg",
        &[
            GIC_DIST_BASE,
            GIC_DIST_SIZE,
            GIC_REDIST_BASE,
            gic_redist_size(cfg.mpidrs.len() as u8),
        ],
    )?;
    f.property_phandle(GIC_PHANDLE)?;
    f.end_node(gic)?;

    let uart = f.begin_node(&format!("uart@{UART_BASE:x}"))?;
    f.property_string("compatible", "ns16550a")?;
    f.property_array_u64("reg", &[UART_BASE, UART_SIZE])?;
    f.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_TYPE_EDGE_RISING])?;
    f.property_u32("clock-frequency", UART_CLOCK)?;
    f.end_node(uart)?;

    if let Some(conduit) = cfg.optee {
        let fw = f.begin_node("firmware")?;
        let optee = f.begin_node("optee")?;
        f.property_string("compatible", "linaro,optee-tz")?;
        f.property_string("method", conduit.method())?;
        f.end_node(optee)?;
        f.end_node(fw)?;
    }

    f.end_node(root)?;
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(optee: Option<Conduit>) -> FdtConfig {
        FdtConfig {
            mem_size: 256 << 20,
            mpidrs: vec![0x8000_0000, 0x8000_0001],
            cmdline: "console=ttyS0 quiet".into(),
            initrd: Some((0x4f00_0000, 0x1234)),
            optee,
        }
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The names of every node and of every property, with property values,
    /// read back by walking the structure block.
    fn walk(blob: &[u8]) -> Vec<(String, Vec<u8>)> {
        let (off_struct, off_strings) = (be32(blob, 8) as usize, be32(blob, 12) as usize);
        let mut out = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut i = off_struct;
        loop {
            let tok = be32(blob, i);
            i += 4;
            match tok {
                1 => {
                    let end = i + blob[i..].iter().position(|&c| c == 0).unwrap();
                    path.push(String::from_utf8(blob[i..end].to_vec()).unwrap());
                    i = (end + 1 + 3) & !3;
                }
                2 => {
                    path.pop();
                }
                3 => {
                    let (len, nameoff) = (be32(blob, i) as usize, be32(blob, i + 4) as usize);
                    let s = off_strings + nameoff;
                    let e = s + blob[s..].iter().position(|&c| c == 0).unwrap();
                    let name = String::from_utf8(blob[s..e].to_vec()).unwrap();
                    let val = blob[i + 8..i + 8 + len].to_vec();
                    out.push((format!("{}/{name}", path.join("/")), val));
                    i = (i + 8 + len + 3) & !3;
                }
                4 => {}
                9 => return out,
                t => panic!("bad token {t}"),
            }
        }
    }

    fn prop<'a>(props: &'a [(String, Vec<u8>)], path: &str) -> Option<&'a [u8]> {
        props
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn blob_has_the_fdt_header() {
        let blob = build(&cfg(None)).unwrap();
        assert_eq!(be32(&blob, 0), 0xd00d_feed);
        assert_eq!(be32(&blob, 4) as usize, blob.len());
        assert!(blob.len() as u64 <= crate::layout::FDT_MAX_SIZE);
    }

    #[test]
    fn optee_node_names_the_conduit() {
        for c in [Conduit::Smc, Conduit::Hvc] {
            let p = walk(&build(&cfg(Some(c))).unwrap());
            assert_eq!(
                prop(&p, "/firmware/optee/compatible"),
                Some(&b"linaro,optee-tz\0"[..])
            );
            let want = format!("{}\0", c.method());
            assert_eq!(prop(&p, "/firmware/optee/method"), Some(want.as_bytes()));
        }
        let p = walk(&build(&cfg(None)).unwrap());
        assert_eq!(prop(&p, "/firmware/optee/compatible"), None);
    }

    #[test]
    fn chosen_carries_bootargs_console_and_initrd() {
        let p = walk(&build(&cfg(None)).unwrap());
        assert_eq!(
            prop(&p, "/chosen/bootargs"),
            Some(&b"console=ttyS0 quiet\0"[..])
        );
        assert_eq!(
            prop(&p, "/chosen/stdout-path"),
            Some(&b"/uart@9000000\0"[..])
        );
        assert_eq!(
            prop(&p, "/chosen/linux,initrd-start"),
            Some(&0x4f00_0000u64.to_be_bytes()[..])
        );
        assert_eq!(
            prop(&p, "/chosen/linux,initrd-end"),
            Some(&0x4f00_1234u64.to_be_bytes()[..])
        );
    }

    #[test]
    fn cpus_use_psci_and_their_mpidr_affinity() {
        let p = walk(&build(&cfg(None)).unwrap());
        assert_eq!(prop(&p, "/cpus/cpu@0/reg"), Some(&0u64.to_be_bytes()[..]));
        assert_eq!(prop(&p, "/cpus/cpu@1/reg"), Some(&1u64.to_be_bytes()[..]));
        assert_eq!(prop(&p, "/cpus/cpu@1/enable-method"), Some(&b"psci\0"[..]));
        assert_eq!(
            prop(&p, "/psci/compatible"),
            Some(&b"arm,psci-1.0\0arm,psci-0.2\0"[..])
        );
        assert_eq!(prop(&p, "/psci/method"), Some(&b"hvc\0"[..]));
    }

    #[test]
    fn gic_timer_and_uart_are_wired() {
        let p = walk(&build(&cfg(None)).unwrap());
        let gic_reg: Vec<u8> = [GIC_DIST_BASE, GIC_DIST_SIZE, GIC_REDIST_BASE, 2 * 0x2_0000]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(prop(&p, "/intc@8000000/reg"), Some(&gic_reg[..]));
        assert_eq!(
            prop(&p, "/intc@8000000/compatible"),
            Some(&b"arm,gic-v3\0"[..])
        );
        assert_eq!(
            prop(&p, "/intc@8000000/phandle"),
            Some(&GIC_PHANDLE.to_be_bytes()[..])
        );
        assert_eq!(
            prop(&p, "/interrupt-parent"),
            Some(&GIC_PHANDLE.to_be_bytes()[..])
        );
        let timer: Vec<u8> = [1u32, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(prop(&p, "/timer/interrupts"), Some(&timer[..]));
        let uart: Vec<u8> = [0u32, 1, 1].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(prop(&p, "/uart@9000000/interrupts"), Some(&uart[..]));
        assert_eq!(
            prop(&p, "/uart@9000000/compatible"),
            Some(&b"ns16550a\0"[..])
        );
        let mem: Vec<u8> = [RAM_BASE, 256 << 20]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(prop(&p, "/memory@40000000/reg"), Some(&mem[..]));
    }
}
