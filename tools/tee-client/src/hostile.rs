// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `--hostile-host`: the guest's side of `tosfwd-vmm --hostile-host`, a test
//! tool that makes the VMM lie to its guest (tools/vmm/src/hostile/mod.rs).
//!
//! The VMM appends `tosfwd.hostile=NAME,...` to the guest's command line:
//! the forgeries it will make, in order. This client opens a session with
//! the hello TA, allocates the shared memory its calls pass (and one more
//! buffer, freed at once: the cookie the guest freed, which the stale
//! forgeries name), then makes one call per forgery: an INVOKE whose first
//! parameter marks it for forgery `k` (a VALUE_INPUT of [`MARK_A`], `k`,
//! [`MARK_C`]) and whose second is a memory reference to its buffer. The
//! VMM answers that call itself, with the forgery.
//!
//! A case per forgery: it passes when the call ended with an error (a TEEC
//! error in the result, or the ioctl's errno), as a driver that takes
//! nothing the host answers on trust ends it; a TEEC_SUCCESS fails it. The
//! guest kernel must stay intact too (no oops, BUG, WARN or slab error),
//! which the bench checks in the guest's console: a driver that trusts the
//! host is expected to oops here (the noguest kernel), and then this
//! process is killed in its call.

use std::io::Write;
use std::time::Duration;

use optee_mediator::msg::teec;
use optee_mediator::utee::ta::{hello, HELLO_UUID};
use tosfwd_selftests::ktap::{Ktap, Outcome};
use tosfwd_tee_client::sys::{
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT as MEMREF_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_VALUE_INPUT as VALUE_IN,
};
use tosfwd_tee_client::{param, Tee};

use crate::{open, PAGE};

/// The marker of a forgery's target call, as tools/vmm/src/hostile/mod.rs
/// defines it: the first parameter's `a` ("hostile!" in ASCII).
pub const MARK_A: u64 = 0x686f_7374_696c_6521;
/// The marker's `c` ("tosfwd!!").
pub const MARK_C: u64 = 0x746f_7366_7764_2121;

/// The word of the kernel command line that lists the forgeries.
pub const CMDLINE_KEY: &str = "tosfwd.hostile=";

/// How long the VMM may flip a forged answer after the call (its
/// FLIP_MAX, 2 s): the next call waits for it to stop.
const FLIP_SETTLE: Duration = Duration::from_millis(2200);

/// The forgeries a kernel command line lists, in order (none if it lists
/// none).
pub fn forgeries(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix(CMDLINE_KEY))
        .map(|l| {
            l.split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The case name of forgery `name`.
pub fn case_name(name: &str) -> String {
    format!(
        "hostile_host_{}_ends_the_call_with_an_error",
        name.replace('-', "_")
    )
}

/// Runs one call per forgery of `names`, reporting each to `k`.
pub fn run(tee: &Tee, names: &[String], k: &mut Ktap<impl Write>) {
    let setup = || -> Result<(u32, tosfwd_tee_client::Shm), String> {
        let session = open(tee, HELLO_UUID, "the hello TA")?;
        let shm = tee
            .shm_alloc(PAGE)
            .map_err(|e| format!("TEE_IOC_SHM_ALLOC of a page: {e}"))?;
        // A buffer registered and freed: its cookie is the stale one.
        let freed = tee
            .shm_alloc(PAGE)
            .map_err(|e| format!("TEE_IOC_SHM_ALLOC of the freed page: {e}"))?;
        drop(freed);
        Ok((session, shm))
    };
    let (session, shm) = match setup() {
        Ok(s) => s,
        Err(why) => {
            for n in names {
                k.report(&case_name(n), Outcome::Fail(why.clone()));
            }
            return;
        }
    };
    for (i, name) in names.iter().enumerate() {
        k.diag(&format!("hostile-host: call {i}: forgery {name}"));
        let mut p = [
            param::value(VALUE_IN, MARK_A, i as u64, MARK_C),
            param::memref(MEMREF_INOUT, shm.id(), 0, PAGE as u64),
        ];
        let outcome = match tee.invoke(session, hello::CMD_INC_VALUE, &mut p) {
            Err(e) => {
                k.diag(&format!(
                    "hostile-host: call {i}: forgery {name}: TEE_IOC_INVOKE failed: {e}"
                ));
                Outcome::Pass
            }
            Ok(r) if r.ret != teec::SUCCESS => {
                k.diag(&format!(
                    "hostile-host: call {i}: forgery {name}: ret {:#x} origin {}, memref size {:#x}",
                    r.ret, r.origin, p[1].b
                ));
                Outcome::Pass
            }
            Ok(r) => Outcome::Fail(format!(
                "the forged call succeeded (ret {:#x} origin {}): the forgery did not reach it",
                r.ret, r.origin
            )),
        };
        k.report(&case_name(name), outcome);
        if name.ends_with("-flip") {
            std::thread::sleep(FLIP_SETTLE);
        }
    }
    drop(shm);
    let _ = tee.close_session(session);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forgeries_come_from_the_last_tosfwd_hostile_word() {
        assert!(forgeries("console=ttyS0 quiet").is_empty());
        assert_eq!(
            forgeries("console=ttyS0 tosfwd.hostile=rpc-free-zero,bogus-thread panic=-1"),
            ["rpc-free-zero", "bogus-thread"]
        );
        assert_eq!(
            forgeries("tosfwd.hostile=a tosfwd.hostile=b,,c"),
            ["b", "c"]
        );
        assert_eq!(
            case_name("rpc-free-zero"),
            "hostile_host_rpc_free_zero_ends_the_call_with_an_error"
        );
    }

    #[test]
    fn the_marker_spells_what_the_vmm_looks_for() {
        assert_eq!(&MARK_A.to_be_bytes(), b"hostile!");
        assert_eq!(&MARK_C.to_be_bytes(), b"tosfwd!!");
    }
}
