// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A kernel client of registered memory, with `--xtest-tas`: the bench's
//! module `tee_kbuf` (tools/tee-kbuf) registers a kernel buffer with
//! `tee_shm_register_kernel_buf()` and passes it to OP-TEE's invoke tests
//! pseudo TA as an in/out memory reference, which the PTA sums into its
//! first byte. Loading the module runs that check, and its init's result is
//! the verdict ([`registered_kernel_buffer`]). In a protected guest the
//! TEE core bounces the buffer through shared memory (patches/guest-7.3,
//! patch 7); without the bounce the driver refuses the registration and the
//! module's load fails.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tosfwd_selftests::ktap::Outcome;

/// Where the bench installs the module.
pub const MODULE: &str = "/lib/tosfwd/tee_kbuf.ko";

/// The case: its name and its check.
pub const CASE: (&str, fn() -> Outcome) = (
    "kernel_client_passes_a_registered_kernel_buffer_to_a_pta",
    registered_kernel_buffer,
);

/// Loads [`MODULE`] (`finit_module`): 0 is a pass, ENODEV a skip (no
/// OP-TEE, or one without the PTA), anything else a failure, with the
/// module's kernel log lines.
pub fn registered_kernel_buffer() -> Outcome {
    if !Path::new(MODULE).exists() {
        return Outcome::Skip(format!(
            "no kernel client module at {MODULE} (the bench installs tools/tee-kbuf)"
        ));
    }
    let f = match File::open(MODULE) {
        Ok(f) => f,
        Err(e) => return Outcome::Fail(format!("opening {MODULE}: {e}")),
    };
    // SAFETY: finit_module(2) reads the open file and the empty,
    // NUL-terminated parameter string; it keeps no pointer after the call.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
    if r == 0 {
        return Outcome::Pass;
    }
    let e = io::Error::last_os_error();
    let log = module_log();
    match e.raw_os_error() {
        Some(libc::ENODEV) => Outcome::Skip(format!("no OP-TEE invoke tests PTA here: {log}")),
        Some(libc::EEXIST) => {
            Outcome::Fail("tee_kbuf is loaded already: its check runs once per boot".to_owned())
        }
        _ => Outcome::Fail(format!("loading {MODULE}: {e}; kernel log: {log}")),
    }
}

/// The module's lines in the kernel log (`/dev/kmsg`), joined; or why
/// they cannot be read.
fn module_log() -> String {
    let mut kmsg = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    {
        Ok(f) => f,
        Err(e) => return format!("(/dev/kmsg: {e})"),
    };
    let mut lines = Vec::new();
    // One record per read; EAGAIN at the end of the buffer.
    let mut rec = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut rec) {
            Ok(0) => break,
            Ok(n) => {
                let s = String::from_utf8_lossy(&rec[..n]);
                // "PRI,SEQ,TIME,FLAGS;MESSAGE\n"
                if let Some((_, msg)) = s.split_once(';') {
                    if let Some(m) = msg.trim_end().strip_prefix("tee_kbuf: ") {
                        lines.push(m.to_owned());
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    if lines.is_empty() {
        "(no tee_kbuf lines)".to_owned()
    } else {
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_module_the_case_is_a_skip_that_names_it() {
        if Path::new(MODULE).exists() {
            return;
        }
        match registered_kernel_buffer() {
            Outcome::Skip(why) => assert!(why.contains(MODULE), "{why}"),
            o => panic!("{o:?}"),
        }
    }
}
