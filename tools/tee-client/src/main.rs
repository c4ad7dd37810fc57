// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-tee-client: the guest side of the end-to-end test. Uses OP-TEE
//! through /dev/tee0 as an unmodified application would (the guest's
//! upstream OP-TEE driver, KVM forwarding, the VMM's mediator and
//! userspace TEE behind it) and reports KTAP with kselftest exit codes.
//!
//! Usage ([`cli`]; `--help`): tosfwd-tee-client [--xtest-tas [--bench N] |
//! --service-fault | --partition-mark NAME | --partition-expect NAME|none |
//! --partition-clear | --hostile-host] [--private-memory | --unshared-memory] [-v|-q]
//! [DEVICE] (default /dev/tee0). Without options, the cases against the VMM's userspace TEE and its
//! built-in TAs; with `--xtest-tas`, the cases
//! against a real OP-TEE with Debian's xtest TAs ([`xtest_tas`]), then with
//! `--bench N` the benchmark, N calls of each kind; with `--service-fault`,
//! the guest's side of the bench's fault run, where the VMM's TEE service
//! is killed and restarted during the cases ([`service_fault`]); with
//! `--private-memory` (alone or with `--xtest-tas`) or `--unshared-memory`,
//! the cases of a protected guest whose driver shares what it hands to the
//! TEE, or shares nothing ([`private`]); with `--hostile-host`, one call per
//! forgery of `tosfwd-vmm --hostile-host`, each of which must end with an
//! error ([`hostile`]).
//!
//! The partition modes ([`partition`]) are for a real OP-TEE with
//! NS-virtualization: `--partition-mark NAME` leaves NAME in the caller's
//! partition (a persistent object of xtest's storage2 TA, a slot of its
//! keep-alive sims_keepalive TA), `--partition-expect NAME` checks that
//! both hold NAME, `--partition-expect none` that neither holds anything
//! (no object, an empty slot: a fresh instance), `--partition-clear` removes
//! the object and ends the sims_keepalive instance. They print one line per
//! check (`ok partition: ...` or `FAIL partition: ...`), not KTAP, and exit
//! with 1 when a check failed.

use std::process::ExitCode;

use optee_mediator::msg::teec;
use optee_mediator::utee::ta::{fill_byte, fnv1a32, hello, memory, HELLO_UUID, MEMORY_UUID};
use optee_mediator::Uuid;
use tosfwd_selftests::ktap::{self, Ktap, Outcome};
use tosfwd_tee_client::sys::{
    tee_ioctl_version_data, TEE_GEN_CAP_GP, TEE_GEN_CAP_REG_MEM, TEE_IMPL_ID_OPTEE,
    TEE_IOCTL_LOGIN_PUBLIC, TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT as MEMREF_INOUT,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INPUT as MEMREF_IN,
    TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT as MEMREF_OUT,
};
use tosfwd_tee_client::{no_tee_device, param, Param, Tee, TeeResult};

use cli::{Cli, Memory, PROGRAM};

/// A TA that is in no VM policy of the bench: OP-TEE's os_test TA
/// (5b9e0e40-2636-11e1-ad9e-0002a5d5c51b). The VMM allows only the userspace
/// TEE's built-in TAs, so opening it must be refused by the mediator's
/// policy (TEEC_ERROR_ACCESS_DENIED from TEEC_ORIGIN_COMMS), not by the TEE
/// (which would say ITEM_NOT_FOUND from TEEC_ORIGIN_TEE).
const FORBIDDEN_UUID: Uuid = xtest_tas::OS_TEST_UUID;

const PAGE: usize = 4096;

type CaseResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

mod cli;
mod hostile;
mod kernel_client;
mod partition;
mod private;
mod service_fault;
mod xtest_tas;

fn ok(r: TeeResult, what: &str) -> CaseResult {
    ensure!(
        r.ret == teec::SUCCESS,
        "{what}: ret {:#x}, origin {}",
        r.ret,
        r.origin
    );
    Ok(())
}

fn open(tee: &Tee, uuid: Uuid, what: &str) -> Result<u32, String> {
    let (session, r) = tee
        .open_session(uuid.0, TEE_IOCTL_LOGIN_PUBLIC, &mut [])
        .map_err(|e| format!("TEE_IOC_OPEN_SESSION {what}: {e}"))?;
    ok(r, &format!("opening {what} ({uuid})"))?;
    Ok(session)
}

fn close(tee: &Tee, session: u32, what: &str) -> CaseResult {
    tee.close_session(session)
        .map_err(|e| format!("TEE_IOC_CLOSE_SESSION {what}: {e}"))
}

fn invoke(tee: &Tee, session: u32, func: u32, params: &mut [Param], what: &str) -> CaseResult {
    let r = tee
        .invoke(session, func, params)
        .map_err(|e| format!("TEE_IOC_INVOKE {what}: {e}"))?;
    ok(r, what)
}

/// Bytes that differ from their reverse, over `len` bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn reversed(v: &[u8]) -> Vec<u8> {
    v.iter().rev().copied().collect()
}

/// Checks the (checksum, length) value CMD_REVERSE/CMD_COPY_REVERSED report.
fn check_sum(p: &Param, data: &[u8]) -> CaseResult {
    ensure!(
        p.a == u64::from(fnv1a32(data)) && p.b == data.len() as u64,
        "TA reported checksum {:#x} length {}, want {:#x} {}",
        p.a,
        p.b,
        fnv1a32(data),
        data.len()
    );
    Ok(())
}

/// TEE_IOC_VERSION's answer, checked to be OP-TEE's.
fn optee_version(tee: &Tee) -> Result<tee_ioctl_version_data, String> {
    let v = tee.version().map_err(|e| format!("TEE_IOC_VERSION: {e}"))?;
    ensure!(
        v.impl_id == TEE_IMPL_ID_OPTEE,
        "impl_id {} is not TEE_IMPL_ID_OPTEE",
        v.impl_id
    );
    Ok(v)
}

fn version(tee: &Tee) -> CaseResult {
    let v = optee_version(tee)?;
    let want = TEE_GEN_CAP_GP | TEE_GEN_CAP_REG_MEM;
    ensure!(
        v.gen_caps & want == want,
        "gen_caps {:#x} lack GP and REG_MEM ({want:#x})",
        v.gen_caps
    );
    Ok(())
}

fn hello_values(tee: &Tee) -> CaseResult {
    let s = open(tee, HELLO_UUID, "the hello TA")?;
    let mut p = [param::value_inout(41, 0)];
    invoke(tee, s, hello::CMD_INC_VALUE, &mut p, "INC_VALUE")?;
    ensure!(p[0].a == 42, "INC_VALUE of 41 gave {}", p[0].a);
    invoke(tee, s, hello::CMD_DEC_VALUE, &mut p, "DEC_VALUE")?;
    ensure!(p[0].a == 41, "DEC_VALUE of 42 gave {}", p[0].a);
    close(tee, s, "the hello TA")
}

/// A temporary memory reference as libteec makes one without registered
/// memory: shared memory for the one call, the data copied in and out.
fn temporary_memref(tee: &Tee) -> CaseResult {
    let s = open(tee, MEMORY_UUID, "the memory TA")?;
    let data = pattern(3 * PAGE + 100, 1);
    let mut shm = tee
        .shm_alloc(data.len())
        .map_err(|e| format!("TEE_IOC_SHM_ALLOC of {} bytes: {e}", data.len()))?;
    shm.as_mut_slice().copy_from_slice(&data);
    let mut p = [
        param::memref(MEMREF_INOUT, shm.id(), 0, data.len() as u64),
        param::value_out(),
    ];
    invoke(tee, s, memory::CMD_REVERSE, &mut p, "REVERSE")?;
    let back = shm.as_slice().to_vec();
    drop(shm);
    let want = reversed(&data);
    ensure!(back == want, "the buffer did not come back reversed");
    check_sum(&p[1], &want)?;
    close(tee, s, "the memory TA")
}

/// Shared memory allocated once and used by parts (offsets across pages),
/// including a too small output that gets TEEC_ERROR_SHORT_BUFFER and the
/// size needed.
fn allocated_shm(tee: &Tee) -> CaseResult {
    let s = open(tee, MEMORY_UUID, "the memory TA")?;
    let mut shm = tee
        .shm_alloc(4 * PAGE)
        .map_err(|e| format!("TEE_IOC_SHM_ALLOC of 4 pages: {e}"))?;
    let (in_off, len, out_off) = (100usize, 5000usize, 2 * PAGE + 50);
    let data = pattern(len, 7);
    shm.as_mut_slice()[in_off..in_off + len].copy_from_slice(&data);
    let id = shm.id();
    let mut p = [
        param::memref(MEMREF_IN, id, in_off as u64, len as u64),
        param::memref(MEMREF_OUT, id, out_off as u64, len as u64),
        param::value_out(),
    ];
    invoke(tee, s, memory::CMD_COPY_REVERSED, &mut p, "COPY_REVERSED")?;
    let want = reversed(&data);
    ensure!(
        shm.as_slice()[out_off..out_off + len] == want[..],
        "the output part does not hold the input reversed"
    );
    ensure!(
        shm.as_slice()[in_off..in_off + len] == data[..],
        "the input part changed"
    );
    check_sum(&p[2], &want)?;
    let mut p = [
        param::memref(MEMREF_IN, id, in_off as u64, len as u64),
        param::memref(MEMREF_OUT, id, out_off as u64, 10),
        param::value_out(),
    ];
    let r = tee
        .invoke(s, memory::CMD_COPY_REVERSED, &mut p)
        .map_err(|e| format!("TEE_IOC_INVOKE COPY_REVERSED short: {e}"))?;
    ensure!(
        r.ret == teec::ERROR_SHORT_BUFFER && p[1].b == len as u64,
        "a 10-byte output gave ret {:#x} and size {}, want SHORT_BUFFER and {len}",
        r.ret,
        p[1].b
    );
    drop(shm);
    close(tee, s, "the memory TA")
}

/// User memory (heap, not page aligned, over several pages) registered
/// with TEE_IOC_SHM_REGISTER: the TA works on it in place.
fn registered_memory(tee: &Tee) -> CaseResult {
    let s = open(tee, MEMORY_UUID, "the memory TA")?;
    let (off, len) = (123usize, 5 * PAGE + 321);
    let mut heap = vec![0u8; off + len + 64];
    let data = pattern(len, 3);
    heap[off..off + len].copy_from_slice(&data);
    let buf = &mut heap[off..off + len];
    let reg = tee
        .shm_register(buf)
        .map_err(|e| format!("TEE_IOC_SHM_REGISTER of {len} bytes: {e}"))?;
    let mut p = [
        param::memref(MEMREF_INOUT, reg.id(), 0, len as u64),
        param::value_out(),
    ];
    invoke(tee, s, memory::CMD_REVERSE, &mut p, "REVERSE")?;
    drop(reg);
    let want = reversed(&data);
    ensure!(
        heap[off..off + len] == want[..],
        "the registered buffer did not come back reversed"
    );
    ensure!(
        heap[..off]
            .iter()
            .chain(&heap[off + len..])
            .all(|b| *b == 0),
        "bytes outside the registered buffer changed"
    );
    check_sum(&p[1], &want)?;
    close(tee, s, "the memory TA")
}

/// Commands that make the TEE call back into the guest: GET_TIME (an RPC
/// command), FILL_RPC_SHM (the driver allocates and frees kernel memory
/// for the TEE) and SLOW (foreign interrupts: the call leaves and resumes).
/// SLOW's answer (rounds done) can only echo the rounds asked, so it shows
/// that the call completed; that it left the TEE and came back each round
/// shows in the VMM's CALL_RETURN_FROM_RPC count, not here.
fn rpcs(tee: &Tee) -> CaseResult {
    let s = open(tee, MEMORY_UUID, "the memory TA")?;
    // The guest's driver answers GET_TIME with its CLOCK_REALTIME: the time
    // reported must lie between this thread's reads of that clock around
    // the call (zeros, or a time made up on the way, do not).
    let mut p = [param::value_out()];
    let before = realtime_ns()?;
    invoke(tee, s, memory::CMD_GET_TIME, &mut p, "GET_TIME")?;
    let after = realtime_ns()?;
    ensure!(
        p[0].b < 1_000_000_000,
        "GET_TIME: {} ns is not below a second",
        p[0].b
    );
    let t = u128::from(p[0].a) * 1_000_000_000 + u128::from(p[0].b);
    ensure!(
        before <= t && t <= after,
        "GET_TIME gave {}.{:09} s, not between the guest's {}.{:09} and {}.{:09} s",
        p[0].a,
        p[0].b,
        before / 1_000_000_000,
        before % 1_000_000_000,
        after / 1_000_000_000,
        after % 1_000_000_000
    );
    let len = 3 * PAGE as u64 + 17;
    let mut p = [param::value_inout(len, 0)];
    invoke(tee, s, memory::CMD_FILL_RPC_SHM, &mut p, "FILL_RPC_SHM")?;
    let want: Vec<u8> = (0..len).map(fill_byte).collect();
    ensure!(
        p[0].a == u64::from(fnv1a32(&want)) && p[0].b == len,
        "FILL_RPC_SHM reported {:#x} {}, want {:#x} {len}",
        p[0].a,
        p[0].b,
        fnv1a32(&want)
    );
    let mut p = [param::value_inout(3, 0)];
    invoke(tee, s, memory::CMD_SLOW, &mut p, "SLOW")?;
    ensure!(p[0].a == 3, "SLOW did {} rounds of 3", p[0].a);
    close(tee, s, "the memory TA")
}

/// The guest's CLOCK_REALTIME in nanoseconds.
fn realtime_ns() -> Result<u128, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .map_err(|e| format!("CLOCK_REALTIME is before 1970: {e}"))
}

fn forbidden_ta(tee: &Tee) -> CaseResult {
    let (_, r) = tee
        .open_session(FORBIDDEN_UUID.0, TEE_IOCTL_LOGIN_PUBLIC, &mut [])
        .map_err(|e| format!("TEE_IOC_OPEN_SESSION: {e}"))?;
    ensure!(
        r.ret == teec::ERROR_ACCESS_DENIED && r.origin == teec::ORIGIN_COMMS,
        "opening {FORBIDDEN_UUID} gave ret {:#x} origin {}, want ACCESS_DENIED ({:#x}) from \
         COMMS ({})",
        r.ret,
        r.origin,
        teec::ERROR_ACCESS_DENIED,
        teec::ORIGIN_COMMS
    );
    Ok(())
}

fn closed_sessions(tee: &Tee) -> CaseResult {
    let h = open(tee, HELLO_UUID, "the hello TA")?;
    let m = open(tee, MEMORY_UUID, "the memory TA")?;
    ensure!(h != m, "two sessions share id {h}");
    close(tee, h, "the hello TA")?;
    close(tee, m, "the memory TA")?;
    let mut p = [param::value_inout(1, 0)];
    let e = tee.invoke(h, hello::CMD_INC_VALUE, &mut p);
    ensure!(
        matches!(&e, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        "invoking closed session {h}: {e:?}, want EINVAL"
    );
    let e = tee.close_session(m);
    ensure!(
        matches!(&e, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        "closing closed session {m}: {e:?}, want EINVAL"
    );
    Ok(())
}

/// Two threads (on two vCPUs when the guest has them) with their own
/// sessions call at the same time, through long commands that leave and
/// re-enter the TEE (foreign interrupts) and short ones: the VMM's shared
/// mediator keeps their calls apart.
fn concurrent_threads(tee: &Tee) -> CaseResult {
    const ROUNDS: u64 = 4;
    const ITERATIONS: u64 = 4;
    let worker = |seed: u64| -> CaseResult {
        let m = open(tee, MEMORY_UUID, "the memory TA")?;
        let h = open(tee, HELLO_UUID, "the hello TA")?;
        for i in 0..ITERATIONS {
            let mut p = [param::value_inout(ROUNDS, 0)];
            invoke(tee, m, memory::CMD_SLOW, &mut p, "SLOW")?;
            ensure!(p[0].a == ROUNDS, "SLOW did {} rounds of {ROUNDS}", p[0].a);
            let v = seed * 1000 + i;
            let mut p = [param::value_inout(v, 0)];
            invoke(tee, h, hello::CMD_INC_VALUE, &mut p, "INC_VALUE")?;
            ensure!(p[0].a == v + 1, "INC_VALUE of {v} gave {}", p[0].a);
        }
        close(tee, h, "the hello TA")?;
        close(tee, m, "the memory TA")
    };
    std::thread::scope(|sc| {
        let a = sc.spawn(|| worker(1));
        let b = sc.spawn(|| worker(2));
        for (n, t) in [a, b].into_iter().enumerate() {
            t.join()
                .map_err(|_| format!("thread {n} panicked"))?
                .map_err(|e| format!("thread {n}: {e}"))?;
        }
        Ok(())
    })
}

/// A named case.
type Case = (&'static str, fn(&Tee) -> CaseResult);

const CASES: [Case; 9] = [
    ("tee_version_reports_optee_with_registered_memory", version),
    ("hello_ta_increments_and_decrements_a_value", hello_values),
    (
        "memory_ta_reverses_a_multi_page_temporary_memref",
        temporary_memref,
    ),
    (
        "memory_ta_copies_between_parts_of_allocated_shm",
        allocated_shm,
    ),
    (
        "memory_ta_reverses_registered_unaligned_user_memory",
        registered_memory,
    ),
    (
        "memory_ta_rpcs_time_kernel_shm_and_foreign_interrupts",
        rpcs,
    ),
    (
        "ta_outside_the_vm_policy_is_access_denied_by_the_mediator",
        forbidden_ta,
    ),
    ("closed_sessions_refuse_invoke_and_close", closed_sessions),
    (
        "two_threads_call_concurrently_with_their_own_sessions",
        concurrent_threads,
    ),
];

fn main() -> ExitCode {
    // A command line it does not take: one line, exit status 2.
    let cli: Cli = match tosfwd_log::parse_args(PROGRAM) {
        Ok(c) => c,
        Err(status) => return status,
    };
    let verbosity = cli.verbosity;
    let o = match cli::options(cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}", tosfwd_log::usage_error(PROGRAM, &e));
            return ExitCode::from(tosfwd_log::EXIT_USAGE);
        }
    };
    if let Err(e) = tosfwd_log::init(PROGRAM, verbosity) {
        eprintln!("{PROGRAM}: error: {e}");
        return ExitCode::from(1);
    }
    if let Some(mode) = &o.partition {
        return partition::main(&o.dev, mode);
    }
    let private_cases;
    let cases: &[Case] = match o.memory {
        Memory::Private => {
            private_cases = private::cases(o.xtest_tas);
            &private_cases
        }
        Memory::Unshared => &private::UNSHARED_CASES,
        Memory::Shared if o.xtest_tas => &xtest_tas::CASES,
        Memory::Shared => &CASES,
    };
    // With --xtest-tas, then a kernel client's case.
    let kernel_case = o.xtest_tas.then_some(kernel_client::CASE);
    let names: Vec<&str> = if o.service_fault {
        service_fault::CASES.iter().map(|c| c.0).collect()
    } else {
        cases
            .iter()
            .map(|c| c.0)
            .chain(kernel_case.map(|c| c.0))
            .collect()
    };
    let tee = match Tee::open(&o.dev) {
        Ok(t) => t,
        // No TEE here: nothing to test (exit 4).
        Err(e) if no_tee_device(&e) => {
            let why = format!("cannot open {}: {e}", o.dev.display());
            return ktap::exit(ktap::skip_all(std::io::stdout(), &why));
        }
        // A TEE that this client cannot use: every case fails (exit 1).
        Err(e) => {
            let mut k = Ktap::stdout(names.len());
            for name in names {
                k.report(
                    name,
                    Outcome::Fail(format!("cannot open {}: {e}", o.dev.display())),
                );
            }
            return ktap::exit(k.finish());
        }
    };
    if o.service_fault {
        let mut k = Ktap::stdout(names.len());
        service_fault::run(&tee, &mut k);
        return ktap::exit(k.finish());
    }
    if o.hostile_host {
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let forgeries = hostile::forgeries(&cmdline);
        if forgeries.is_empty() {
            let why = "no tosfwd.hostile= on the kernel command line (tosfwd-vmm --hostile-host)";
            return ktap::exit(ktap::skip_all(std::io::stdout(), why));
        }
        let mut k = Ktap::stdout(forgeries.len());
        hostile::run(&tee, &forgeries, &mut k);
        return ktap::exit(k.finish());
    }
    let plan = names.len() + usize::from(o.bench.is_some());
    let mut k = Ktap::stdout(plan);
    for (name, case) in cases {
        k.run(name, || match case(&tee) {
            Ok(()) => Outcome::Pass,
            Err(why) => Outcome::Fail(why),
        });
    }
    if let Some((name, case)) = kernel_case {
        k.run(name, case);
    }
    if let Some(n) = o.bench {
        k.run(
            "benchmark_value_and_64k_memref_calls",
            || match xtest_tas::bench(&tee, n, o.memory == Memory::Shared) {
                Ok(()) => Outcome::Pass,
                Err(why) => Outcome::Fail(why),
            },
        );
    }
    ktap::exit(k.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_memory_goes_with_the_xtest_tas() {
        let names: Vec<_> = private::cases(true).iter().map(|c| c.0).collect();
        assert_eq!(names.len(), xtest_tas::CASES.len());
        assert!(names.contains(&"tee_version_reports_optee_without_registered_memory"));
        assert!(names.contains(&"registering_user_memory_is_refused_with_eopnotsupp"));
        assert!(!names.iter().any(|n| n.contains("registered_unaligned")));
    }

    #[test]
    fn private_memory_replaces_only_the_registered_memory_cases() {
        let names = |c: &[Case]| c.iter().map(|c| c.0).collect::<Vec<_>>();
        let private = private::cases(false);
        assert_eq!(private.len(), CASES.len());
        let changed: Vec<_> = names(&CASES)
            .into_iter()
            .zip(names(&private))
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [
                (
                    "tee_version_reports_optee_with_registered_memory",
                    "tee_version_reports_optee_without_registered_memory"
                ),
                (
                    "memory_ta_reverses_registered_unaligned_user_memory",
                    "registering_user_memory_is_refused_with_eopnotsupp"
                )
            ]
        );
    }
}
