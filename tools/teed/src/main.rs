// SPDX-License-Identifier: Apache-2.0 OR MIT
//! tosfwd-teed: serves a TEE to VMMs over Unix or TCP sockets.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::path::PathBuf;

use host_tee::supplicant::DEFAULT_TA_DIR;
use host_tee::{DevTee, HostTee, PartitionConfig, PartitionError, SupplicantMode};
use optee_mediator::ratelimit::LogLimiter;
use optee_mediator::{Backend, UserTee, UteeConfig, DEFAULT_REFUSAL_LOGS_PER_SECOND};
use tee_remote::policy::ServicePolicy;
use tee_remote::server::VmOptions;
use tee_remote::Service;
use tosfwd_teed::args::{vm_storage, Address, Args};
use tosfwd_teed::listen::{self, Greeter, Shared, SocketAccess};

/// The program's name in its messages.
const PROGRAM: &str = "tosfwd-teed";

/// A backend of its own for each VM on the host's TEE device `path`,
/// each VM's context passed through `prepare` (see
/// [`HostTee::on_device_with`]): the service then holds no lock across a
/// call into the TEE, and one VM's slow call or teardown holds up no
/// other VM. `first`, opened and checked, tells the threads and revision;
/// `partitions`: each VM gets a partition of its own, whose supplicant
/// requests may be relayed to the VMM's guest.
fn host_per_vm(
    path: PathBuf,
    first: DevTee,
    partitions: bool,
    prepare: impl Fn(DevTee, VmOptions) -> Result<DevTee, host_tee::HostTeeError>
        + Send
        + Sync
        + 'static,
) -> Arc<Service> {
    // SAFETY: HostTee registers guest memory with the host driver only
    // where the memory it is given has a host mapping. A call's spans
    // (tee_remote::shadow::Shadow) have none; a VM's shared guest RAM
    // (protocol version 4) has, and the connection keeps it mapped until
    // after the VM's vm_destroyed has returned (its Vm drops its backend
    // before its mapping): the contract holds. The probe makes no call.
    let probe = unsafe { HostTee::on_device(first) };
    let (threads, revision) = (probe.thread_count(), probe.os_revision());
    drop(probe);
    let prepare = Arc::new(prepare);
    Service::per_vm(
        threads,
        revision,
        Box::new(move |options: VmOptions| {
            if options.relay_supplicant && !partitions {
                return Err(format!(
                    "{}: a VM's supplicant requests are relayed only from a partition of its \
                     own (an NS-virtualization OP-TEE, without --tee-shared)",
                    path.display()
                ));
            }
            let dev = DevTee::open(&path).map_err(|e| e.to_string())?;
            let prepare = prepare.clone();
            // SAFETY: as above.
            let tee = unsafe { HostTee::on_device_with(dev, move |d| prepare(d, options)) };
            // A VM whose guest serves its partition's supplicant requests:
            // the connection hands them to the VMM on the VM's calls.
            let tee = if options.relay_supplicant {
                tee.relay_carried_by_caller()
            } else {
                tee
            };
            Ok(Box::new(tee) as Box<dyn Backend + Send>)
        }),
    )
}

/// The TEE `args` asks for.
fn service(args: &Args) -> Result<Arc<Service>, String> {
    let Some(path) = args.tee_device() else {
        return Ok(Service::new(Box::new(UserTee::new(UteeConfig::default()))));
    };
    // Opened once now, so that a missing or refused device is a start-up
    // error; each VM then gets a context of its own.
    let first = DevTee::open(&path).map_err(|e| e.to_string())?;
    let serves_vms = first
        .serves_vms()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !serves_vms || args.tee_shared {
        if !serves_vms
            && (args.tee_storage.is_some() || args.tee_ta_dir.is_some() || args.has_storage_quota())
        {
            return Err(format!(
                "{}: --tee-storage, --tee-ta-dir and --tee-storage-max-* need an OP-TEE that \
                 serves VMs apart (NS-virtualization, TEE_GEN_CAP_VM)",
                path.display()
            ));
        }
        return Ok(host_per_vm(path, first, false, |d, _| Ok(d)));
    }
    // A partition per VM: each its own fresh storage directory under the
    // base, removed with the VM (a VM known to the service only by its
    // connection has nothing to come back to).
    let base = args.storage_base().map_err(|e| e.to_string())?;
    let quota = args.storage_quota();
    let ta_dir = args
        .tee_ta_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TA_DIR));
    log::info!(
        "{}: a partition of its own per VM: TAs from {}, secure storage under {}",
        path.display(),
        ta_dir.display(),
        base.display()
    );
    let count = AtomicU64::new(0);
    let prepare = move |mut dev: DevTee, options: VmOptions| {
        let next = count.fetch_add(1, Ordering::Relaxed) + 1;
        let config = if options.relay_supplicant {
            // The guest's tee-supplicant keeps the TAs and the storage:
            // nothing of the partition's is kept here.
            PartitionConfig {
                storage_dir: PathBuf::new(),
                supplicant: SupplicantMode::Guest,
                ..PartitionConfig::new("")
            }
        } else {
            let storage_dir = vm_storage(&base, next).map_err(|e| PartitionError::Supplicant {
                path: dev.path().to_path_buf(),
                err: e.into(),
            })?;
            PartitionConfig {
                ta_dir: ta_dir.clone(),
                storage_dir,
                remove_storage: true,
                quota,
                supplicant: SupplicantMode::Vmm,
            }
        };
        let storage_dir = config.storage_dir.clone();
        let id = match dev.make_vm(config) {
            Ok(part) => part.id,
            Err(e) => {
                // The fresh directory goes if the partition does not come.
                if !storage_dir.as_os_str().is_empty() {
                    let _ = std::fs::remove_dir(&storage_dir);
                }
                return Err(e.into());
            }
        };
        log::info!(
            "OP-TEE VM {id} for the service's VM {next}{}",
            if options.relay_supplicant {
                ", its supplicant requests relayed to the VMM's guest"
            } else {
                ""
            }
        );
        Ok(dev)
    };
    Ok(host_per_vm(path, first, true, prepare))
}

/// SIGTERM and SIGINT, blocked in this thread and every thread it starts
/// after, to be taken by [`stop_on_signal`].
fn block_stop_signals() -> Result<libc::sigset_t, String> {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    let r = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if r != 0 {
        return Err(format!(
            "cannot block SIGTERM: {}",
            std::io::Error::from_raw_os_error(r)
        ));
    }
    Ok(set)
}

/// Waits for SIGTERM or SIGINT, removes the Unix sockets, exits 0: the
/// VMMs see their connections close, and a new service can bind at once.
fn stop_on_signal(set: &libc::sigset_t, args: &Args) -> ! {
    let mut sig = 0;
    // SAFETY: `set` is a valid, initialized sigset_t and `sig` a live int.
    while unsafe { libc::sigwait(set, &mut sig) } != 0 {}
    log::info!("signal {sig}: stopping");
    for l in &args.listen {
        if let Address::Unix(p) = l {
            let _ = std::fs::remove_file(p);
        }
    }
    std::process::exit(0)
}

/// Raises the soft limit on open files to the hard one: each connection
/// holds a socket, each VM on the host TEE a /dev/tee context and, if its
/// memory is shared, the memfd; 64 connections of 64 VMs are past the usual
/// soft limit of 1024.
fn raise_file_limit() {
    // SAFETY: an all-zero rlimit is a valid out-parameter for getrlimit.
    let mut l: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return;
    }
    if l.rlim_cur < l.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: l.rlim_max,
            rlim_max: l.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            l = raised;
        }
    }
    log::debug!("open files: at most {} (RLIMIT_NOFILE)", l.rlim_cur);
}

fn run(args: &Args) -> Result<(), String> {
    let signals = block_stop_signals()?;
    raise_file_limit();
    let policy = match &args.policy {
        Some(p) => ServicePolicy::load(p).map_err(|e| e.to_string())?,
        // SAFETY: geteuid has no preconditions.
        None => ServicePolicy::owner(unsafe { libc::geteuid() }),
    };
    let tcp = args.listen.iter().any(|l| matches!(l, Address::Tcp(_)));
    let unix = args.listen.iter().any(|l| matches!(l, Address::Unix(_)));
    if let Some(why) = policy.admits_nobody(unix, tcp) {
        log::warn!("{why}");
    } else if tcp && !policy.accepts_tcp() {
        log::warn!(
            "TCP peers will be refused: no rule of the policy names one (add a [[peer]] rule \
             with tcp = \"ADDR\" or \"any\" to the policy file; TCP carries no credentials)"
        );
    }
    let access = SocketAccess {
        mode: args.socket_mode,
        group: args
            .socket_group
            .as_deref()
            .map(listen::group_id)
            .transpose()?,
    };
    let service = service(args)?;
    let shared = Arc::new(Shared {
        service: service.clone(),
        policy,
        limits: args.limits(),
        active: AtomicU32::new(0),
        log: Mutex::new(LogLimiter::new(DEFAULT_REFUSAL_LOGS_PER_SECOND)),
    });
    let mut listeners = Vec::new();
    for l in &args.listen {
        let listener = listen::bind(l, access).map_err(|e| e.to_string())?;
        eprintln!(
            "tosfwd-teed: listening on {l} (tee {}, {} threads per VM, policy {})",
            args.tee.name(),
            service.thread_count(),
            args.policy
                .as_ref()
                .map_or("the service's own user".to_owned(), |p| p
                    .display()
                    .to_string())
        );
        listeners.push(listener);
    }
    let greeter = Greeter::new(listeners, shared).map_err(|e| format!("listening: {e}"))?;
    std::thread::Builder::new()
        .name("teed-greet".to_owned())
        .spawn(move || greeter.run())
        .map_err(|e| format!("cannot start the listener thread: {e}"))?;
    stop_on_signal(&signals, args)
}

fn main() -> ExitCode {
    // A command line it does not take: one line, exit status 2.
    let args: Args = match tosfwd_log::parse_args(PROGRAM) {
        Ok(a) => a,
        Err(status) => return status,
    };
    if let Err(e) = args.check() {
        eprintln!("{}", tosfwd_log::usage_error(PROGRAM, &e));
        return ExitCode::from(tosfwd_log::EXIT_USAGE);
    }
    if let Err(e) = tosfwd_log::init(PROGRAM, args.verbosity).and_then(|()| run(&args)) {
        eprintln!("tosfwd-teed: error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
