// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Quotas, policy, registered memory bookkeeping, teardown and isolation.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use optee_mediator::abi::{self, ret};
use optee_mediator::backend::{
    Backend, BackendError, CacheDisable, ClientId, Command, OsRevision, RpcReply, StdCall, Step,
    ThreadId,
};
use optee_mediator::msg::{attr, cmd, login, teec, MsgArg, MsgParam, PAGE_SIZE};
use optee_mediator::utee::ta::memory;
use optee_mediator::{
    GuestRam, LoginPolicy, Mediator, MediatorError, Policy, Quotas, TaFilter, UserTee, UteeConfig,
    Uuid,
};

fn quotas(q: Quotas) -> Policy {
    Policy {
        quotas: q,
        ..Policy::default()
    }
}

const OOM: (u32, u32) = (teec::ERROR_OUT_OF_MEMORY, teec::ORIGIN_COMMS);

#[test]
fn calls_beyond_the_thread_count_are_ethread_limit_until_one_finishes() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let mut parked = Vec::new();
    for _ in 0..8 {
        let (_, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
        assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
        parked.push(r);
    }
    let gpa = g.put_invoke(s, 0, vec![]);
    assert_eq!(
        g.call_with_arg_raw(gpa).regs(),
        &[u64::from(ret::ETHREAD_LIMIT)]
    );
    assert_eq!(g.m.usage().calls, 8);
    let r = parked.pop().unwrap();
    assert_eq!(g.serve(r).regs(), &[0]);
    assert_eq!(
        g.call_with_arg_raw(gpa).regs(),
        &[0],
        "a thread is free again"
    );
}

#[test]
fn the_call_quota_limits_threads_below_the_backend_count() {
    let mut g = guest_with(
        quotas(Quotas {
            max_calls: Some(1),
            ..Quotas::default()
        }),
        UteeConfig::default(),
    );
    let s = g.open(MEMORY);
    let (_, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    let gpa = g.put_invoke(s, 0, vec![]);
    assert_eq!(
        g.call_with_arg_raw(gpa).regs(),
        &[u64::from(ret::ETHREAD_LIMIT)]
    );
}

#[test]
fn sixteen_buffers_may_be_registered_and_the_seventeenth_is_out_of_memory() {
    let mut g = guest();
    let mut cookies = Vec::new();
    for _ in 0..16 {
        let (c, _, r) = g.register(&[1, 2, 3], 0);
        assert_eq!(r, teec::SUCCESS);
        cookies.push(c);
    }
    let (p, _) = g.tmem(attr::TMEM_OUTPUT, &[1, 2, 3], 0);
    let (_, out) = g.std_call(&MsgArg::new(cmd::REGISTER_SHM, vec![p]));
    assert_eq!((out.header.ret, out.header.ret_origin), OOM);
    // A temporary buffer counts too.
    let s = g.open(MEMORY);
    let (t, _) = g.tmem(attr::TMEM_INOUT, &[1, 2, 3], 0);
    assert_eq!(outcome(&g.reverse(s, t)), OOM);
    assert_eq!(g.unregister(cookies[0]), teec::SUCCESS);
    assert_eq!(g.reverse(s, t).header.ret, teec::SUCCESS);
}

#[test]
fn a_buffer_of_129_pages_is_accepted_and_of_130_out_of_memory() {
    let mut g = guest();
    // 512 KiB at a non-zero offset: 129 pages.
    let (_, pages, r) = g.register(&vec![0u8; 128 * PAGE_SIZE as usize], 0x10);
    assert_eq!((r, pages.len()), (teec::SUCCESS, 129));
    let (p, _) = g.tmem(
        attr::TMEM_OUTPUT,
        &vec![0u8; 129 * PAGE_SIZE as usize],
        0x10,
    );
    let (_, out) = g.std_call(&MsgArg::new(cmd::REGISTER_SHM, vec![p]));
    assert_eq!((out.header.ret, out.header.ret_origin), OOM);
    assert_eq!(g.m.usage().buffers, 1);
}

#[test]
fn the_total_page_quota_counts_all_buffers() {
    let mut g = guest_with(
        quotas(Quotas {
            max_total_pages: 300,
            ..Quotas::default()
        }),
        UteeConfig::default(),
    );
    let big = vec![0u8; 129 * PAGE_SIZE as usize];
    assert_eq!(g.register(&big, 0).2, teec::SUCCESS);
    assert_eq!(g.register(&big, 0).2, teec::SUCCESS);
    assert_eq!(g.m.usage().pages, 258);
    let (p, _) = g.tmem(attr::TMEM_OUTPUT, &big[..43 * PAGE_SIZE as usize], 0);
    let (_, out) = g.std_call(&MsgArg::new(cmd::REGISTER_SHM, vec![p]));
    assert_eq!((out.header.ret, out.header.ret_origin), OOM);
    assert_eq!(
        g.register(&big[..42 * PAGE_SIZE as usize], 0).2,
        teec::SUCCESS
    );
    assert_eq!(g.m.usage().pages, 300);
}

#[test]
fn the_default_total_is_16384_pages() {
    assert_eq!(Quotas::default().max_total_pages, 16384);
}

#[test]
fn the_session_quota_refuses_opens_beyond_it() {
    let mut g = guest_with(
        quotas(Quotas {
            max_sessions: 2,
            ..Quotas::default()
        }),
        UteeConfig::default(),
    );
    let a = g.open(HELLO);
    g.open(HELLO);
    let (r, o, _) = g.open_with(HELLO, 0, vec![]);
    assert_eq!((r, o), OOM);
    assert_eq!(g.close(a), teec::SUCCESS);
    let (r, _, _) = g.open_with(HELLO, 0, vec![]);
    assert_eq!(r, teec::SUCCESS);
}

#[test]
fn registering_a_cookie_twice_is_bad_parameters() {
    let mut g = guest();
    let (c, _, r) = g.register(&[1; 10], 0);
    assert_eq!(r, teec::SUCCESS);
    let (mut p, _) = g.tmem(attr::TMEM_OUTPUT, &[1; 10], 0);
    p.c = c;
    let (_, out) = g.std_call(&MsgArg::new(cmd::REGISTER_SHM, vec![p]));
    assert_eq!(
        (out.header.ret, out.header.ret_origin),
        (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS)
    );
    assert_eq!(g.m.usage().buffers, 1);
}

#[test]
fn register_shm_needs_one_noncontig_tmem_of_nonzero_size() {
    let mut g = guest();
    let (p, _) = g.tmem(attr::TMEM_OUTPUT, &[1; 10], 0);
    let mut cases = vec![vec![], vec![p, p]];
    let mut q = p;
    q.attr = attr::TMEM_OUTPUT;
    cases.push(vec![q]);
    let mut q = p;
    q.b = 0;
    cases.push(vec![q]);
    let mut q = p;
    q.a = 0;
    cases.push(vec![q]);
    let mut q = p;
    q.attr = attr::RMEM_OUTPUT | attr::NONCONTIG;
    cases.push(vec![q]);
    let mut q = p;
    q.attr |= attr::META;
    cases.push(vec![q]);
    for (i, params) in cases.into_iter().enumerate() {
        let (_, out) = g.std_call(&MsgArg::new(cmd::REGISTER_SHM, params));
        assert_eq!(out.header.ret, teec::ERROR_BAD_PARAMETERS, "case {i}");
    }
    assert_eq!(g.m.usage().buffers, 0);
}

#[test]
fn unregistering_frees_the_quota_and_unknown_cookies_are_bad_parameters() {
    let mut g = guest();
    let (c, _, _) = g.register(&[0; 5000], 0);
    assert_eq!(
        g.m.usage(),
        optee_mediator::Usage {
            buffers: 1,
            pages: 2,
            ..Default::default()
        }
    );
    assert_eq!(g.unregister(c), teec::SUCCESS);
    assert_eq!(g.m.usage().buffers, 0);
    assert_eq!(g.m.usage().pages, 0);
    assert_eq!(g.unregister(c), teec::ERROR_BAD_PARAMETERS);
    let (_, out) = g.std_call(&MsgArg::new(
        cmd::UNREGISTER_SHM,
        vec![MsgParam::new(attr::TMEM_INPUT, 0, 0, c)],
    ));
    assert_eq!(out.header.ret, teec::ERROR_BAD_PARAMETERS);
}

/// A backend that parks each INVOKE with FOREIGN_INTR once.
struct Parking(UserTee);

impl Backend for Parking {
    fn thread_count(&self) -> u32 {
        self.0.thread_count()
    }
    fn os_revision(&self) -> OsRevision {
        self.0.os_revision()
    }
    fn vm_created(&mut self, c: ClientId) -> Result<(), BackendError> {
        self.0.vm_created(c)
    }
    fn vm_destroyed(&mut self, c: ClientId) {
        self.0.vm_destroyed(c)
    }
    fn enable_shm_cache(&mut self, c: ClientId) -> bool {
        self.0.enable_shm_cache(c)
    }
    fn disable_shm_cache(&mut self, c: ClientId) -> CacheDisable {
        self.0.disable_shm_cache(c)
    }
    fn start(&mut self, c: ClientId, t: ThreadId, call: &mut StdCall, mem: &dyn GuestRam) -> Step {
        if matches!(call.command, Command::Invoke { .. }) {
            return Step::Rpc(optee_mediator::backend::RpcRequest::ForeignIntr);
        }
        self.0.start(c, t, call, mem)
    }
    fn resume(
        &mut self,
        c: ClientId,
        t: ThreadId,
        call: &mut StdCall,
        _r: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        self.0.start(c, t, call, mem)
    }
    fn abandon(&mut self, c: ClientId, t: ThreadId) {
        self.0.abandon(c, t)
    }
}

#[test]
fn unregistering_a_buffer_held_by_a_parked_call_is_busy_until_it_ends() {
    let m = Mediator::new(ClientId(3), Policy::default(), Parking(UserTee::default())).unwrap();
    let mut g = Guest::from_mediator(m);
    let s = g.open(MEMORY);
    let (c, _, _) = g.register(&[7; 64], 0);
    let (gpa, r) = g.start_invoke(
        s,
        memory::CMD_REVERSE,
        vec![
            MsgParam::new(attr::RMEM_INOUT, 0, 64, c),
            value(attr::VALUE_OUTPUT, 0),
        ],
    );
    assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    let arg = MsgArg::new(
        cmd::UNREGISTER_SHM,
        vec![MsgParam::new(attr::RMEM_INPUT, 0, 0, c)],
    );
    let ugpa = g.put_arg(&arg);
    assert_eq!(g.call_with_arg_raw(ugpa).regs(), &[0]);
    assert_eq!(g.read_arg(ugpa).header.ret, teec::ERROR_BUSY);
    assert_eq!(g.serve(r).regs(), &[0]);
    assert_eq!(g.read_arg(gpa).header.ret, teec::SUCCESS);
    assert_eq!(g.unregister(c), teec::SUCCESS);
}

#[test]
fn temporary_buffers_are_released_when_the_call_ends_even_on_refusal() {
    let mut g = guest();
    let s = g.open(MEMORY);
    let (t1, _) = g.tmem(attr::TMEM_INOUT, &[1; 100], 0);
    let (t2, _) = g.tmem(attr::TMEM_INOUT, &[1; 100], 0);
    let bad = MsgParam::new(attr::RMEM_INPUT, 0, 1, 0xbad);
    let out = g.invoke(s, memory::CMD_REVERSE, vec![t1, t2, bad]);
    assert_eq!(out.header.ret, teec::ERROR_BAD_PARAMETERS);
    assert_eq!(g.m.usage().buffers, 0);
    assert_eq!(g.m.usage().pages, 0);
}

#[test]
fn policy_may_forbid_tas() {
    let policy = Policy {
        tas: TaFilter::Only(vec![HELLO]),
        ..Policy::default()
    };
    let mut g = guest_with(policy, UteeConfig::default());
    assert_eq!(g.open_with(HELLO, 0, vec![]).0, teec::SUCCESS);
    let (r, o, _) = g.open_with(MEMORY, 0, vec![]);
    assert_eq!((r, o), (teec::ERROR_ACCESS_DENIED, teec::ORIGIN_COMMS));
}

#[test]
fn policy_may_deny_kernel_logins() {
    let policy = Policy {
        login: LoginPolicy::DenyKernel,
        ..Policy::default()
    };
    let mut g = guest_with(policy, UteeConfig::default());
    assert_eq!(g.open_with(HELLO, login::PUBLIC, vec![]).0, teec::SUCCESS);
    assert_eq!(
        g.open_with(HELLO, login::APPLICATION, vec![]).0,
        teec::SUCCESS
    );
    for lg in [login::REE_KERNEL, login::REE_KERNEL_MAX] {
        let (r, o, _) = g.open_with(HELLO, lg, vec![]);
        assert_eq!((r, o), (teec::ERROR_ACCESS_DENIED, teec::ORIGIN_COMMS));
    }
}

/// A backend recording the commands it is given.
#[derive(Default)]
struct Recorder {
    inner: UserTee,
    seen: Vec<Command>,
}

impl Backend for Recorder {
    fn thread_count(&self) -> u32 {
        2
    }
    fn os_revision(&self) -> OsRevision {
        self.inner.os_revision()
    }
    fn vm_created(&mut self, c: ClientId) -> Result<(), BackendError> {
        self.inner.vm_created(c)
    }
    fn vm_destroyed(&mut self, c: ClientId) {
        self.inner.vm_destroyed(c)
    }
    fn enable_shm_cache(&mut self, c: ClientId) -> bool {
        self.inner.enable_shm_cache(c)
    }
    fn disable_shm_cache(&mut self, c: ClientId) -> CacheDisable {
        self.inner.disable_shm_cache(c)
    }
    fn start(&mut self, c: ClientId, t: ThreadId, call: &mut StdCall, mem: &dyn GuestRam) -> Step {
        self.seen.push(call.command.clone());
        self.inner.start(c, t, call, mem)
    }
    fn resume(
        &mut self,
        c: ClientId,
        t: ThreadId,
        call: &mut StdCall,
        r: RpcReply,
        mem: &dyn GuestRam,
    ) -> Step {
        self.inner.resume(c, t, call, r, mem)
    }
    fn abandon(&mut self, c: ClientId, t: ThreadId) {
        self.inner.abandon(c, t)
    }
}

/// Opens a session of the hello TA with a kernel login under `policy`:
/// the command as the backend received it.
fn open_as_the_backend_sees_it(policy: Policy) -> Command {
    let m = Mediator::new(ClientId(9), policy, Recorder::default()).unwrap();
    let mut g = Guest::from_mediator(m);
    assert_eq!(
        g.open_with(HELLO, login::REE_KERNEL, vec![]).0,
        teec::SUCCESS
    );
    g.m.backend().seen[0].clone()
}

#[test]
fn force_public_replaces_the_login_and_client_uuid() {
    let policy = Policy {
        login: LoginPolicy::ForcePublic,
        ..Policy::default()
    };
    assert_eq!(
        open_as_the_backend_sees_it(policy),
        Command::OpenSession {
            ta: HELLO,
            client: Uuid::NIL,
            login: login::PUBLIC
        }
    );
}

#[test]
fn pass_through_keeps_the_guest_login_and_client_uuid() {
    assert_eq!(
        open_as_the_backend_sees_it(Policy::default()),
        Command::OpenSession {
            ta: HELLO,
            client: Uuid([0x11; 16]),
            login: login::REE_KERNEL
        }
    );
}

#[test]
fn teardown_frees_parked_calls_buffers_and_sessions_and_tells_the_backend() {
    let tee = Arc::new(Mutex::new(UserTee::default()));
    let m = Mediator::new(ClientId(5), Policy::default(), tee.clone()).unwrap();
    let mut g = Guest::from_mediator(m);
    assert_eq!(g.fast(abi::ENABLE_SHM_CACHE).a0(), 0);
    let s = g.open(MEMORY);
    g.register(&[1; 9000], 0);
    g.invoke(s, memory::CMD_GET_TIME, vec![value(attr::VALUE_OUTPUT, 0)]);
    let (_, r) = g.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 9)]);
    assert_eq!(r.a0(), u64::from(ret::RPC_FOREIGN_INTR));
    let u = g.m.usage();
    assert_eq!(
        (u.calls, u.buffers, u.pages, u.sessions, u.rpc_args),
        (1, 1, 3, 1, 1)
    );
    assert_eq!(tee.lock().unwrap().thread_count_of(ClientId(5)), 1);
    g.m.teardown();
    assert_eq!(g.m.usage(), optee_mediator::Usage::default());
    assert!(!tee.lock().unwrap().has_client(ClientId(5)));
    // A torn-down mediator answers nothing.
    assert_eq!(g.fast(abi::CALLS_UID).regs(), &[u64::MAX]);
    g.m.teardown();
}

#[test]
fn dropping_the_mediator_destroys_the_vm_in_a_shared_backend() {
    let tee = Arc::new(Mutex::new(UserTee::default()));
    {
        let _m = Mediator::new(ClientId(2), Policy::default(), tee.clone()).unwrap();
        assert!(tee.lock().unwrap().has_client(ClientId(2)));
    }
    assert!(!tee.lock().unwrap().has_client(ClientId(2)));
}

#[test]
fn a_quota_of_no_calls_is_refused_with_the_vm_not_created() {
    let tee = Arc::new(Mutex::new(UserTee::default()));
    let policy = Policy {
        quotas: Quotas {
            max_calls: Some(0),
            ..Quotas::default()
        },
        ..Policy::default()
    };
    let e = Mediator::new(ClientId(1), policy, tee.clone()).unwrap_err();
    assert!(matches!(e, MediatorError::NoCalls), "{e:?}");
    assert!(e.to_string().contains("Quotas::max_calls"), "{e}");
    assert!(!tee.lock().unwrap().has_client(ClientId(1)));
    // One call is the least a VM may have: GET_THREAD_COUNT says 1.
    let policy = Policy {
        quotas: Quotas {
            max_calls: Some(1),
            ..Quotas::default()
        },
        ..Policy::default()
    };
    let m = Mediator::new(ClientId(1), policy, tee).unwrap();
    assert_eq!(m.thread_count(), 1);
}

#[test]
fn client_id_zero_and_duplicate_clients_are_refused() {
    let tee = Arc::new(Mutex::new(UserTee::default()));
    assert!(matches!(
        Mediator::new(ClientId(0), Policy::default(), tee.clone()),
        Err(MediatorError::ReservedClientId)
    ));
    let _a = Mediator::new(ClientId(1), Policy::default(), tee.clone()).unwrap();
    assert!(matches!(
        Mediator::new(ClientId(1), Policy::default(), tee.clone()),
        Err(MediatorError::Backend(BackendError::ClientExists(
            ClientId(1)
        )))
    ));
}

type SharedTee = Arc<Mutex<UserTee>>;

/// Guests of VMs 1 and 2, whose mediators share one TEE.
fn two_vms_sharing_a_tee() -> (Guest<SharedTee>, Guest<SharedTee>) {
    let tee = Arc::new(Mutex::new(UserTee::default()));
    let vm = |id| {
        Guest::from_mediator(Mediator::new(ClientId(id), Policy::default(), tee.clone()).unwrap())
    };
    (vm(1), vm(2))
}

#[test]
fn two_vms_sharing_a_tee_cannot_use_each_others_sessions() {
    let (mut a, mut b) = two_vms_sharing_a_tee();
    let sa = a.open(HELLO);
    assert_eq!(
        outcome(&b.invoke(sa, 0, vec![value(attr::VALUE_INOUT, 1)])),
        (teec::ERROR_BAD_PARAMETERS, teec::ORIGIN_COMMS)
    );
    let sb = b.open(HELLO);
    assert_eq!(sa, sb, "ids are per VM");
    assert_eq!(a.close(sa), teec::SUCCESS);
    let out = b.invoke(sb, 0, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!((out.header.ret, out.params[0].a), (teec::SUCCESS, 2));
}

#[test]
fn return_from_rpc_of_another_vms_thread_is_eresume() {
    let (mut a, mut b) = two_vms_sharing_a_tee();
    let s = a.open(MEMORY);
    let (_, r) = a.start_invoke(s, memory::CMD_SLOW, vec![value(attr::VALUE_INOUT, 1)]);
    assert_eq!(b.resume(&r).regs(), &[u64::from(ret::ERESUME)]);
    assert_eq!(a.resume(&r).regs(), &[0]);
}
