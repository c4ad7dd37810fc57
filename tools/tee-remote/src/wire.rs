// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The wire protocol between a VMM ([`crate::RemoteTee`]) and the TEE
//! service ([`crate::server`]), version [`PROTOCOL_VERSION`].
//!
//! Every message is a frame: its length as a little-endian `u32`, then the
//! message encoded with postcard (serde's data model in a compact,
//! documented, stable binary form). A frame longer than [`MAX_FRAME`] is
//! refused before it is read. The VMM speaks first ([`Request`]) and the
//! service answers each request with exactly one [`Response`], in order.
//!
//! The first request of a connection is [`Request::Hello`]; the service
//! answers [`Response::Welcome`] (to a version 1 peer [`Response::Hello`])
//! or [`Response::Refused`] (and closes). A version is a promise: a change
//! to any type of this module that changes its encoding takes a new
//! version, and a peer refuses a version it does not speak. New messages
//! are new variants at the end of their enum, so that the encoding of
//! every older message stays as it was and a service can go on serving
//! the older versions ([`OLDEST_PROTOCOL_VERSION`]).
//!
//! Version 2 added the keepalive: the welcome says after how long a
//! silent peer is dropped ([`Welcome::idle_timeout_ms`]), and a peer that
//! has nothing to ask sends [`Request::Ping`] (answered
//! [`Response::Pong`], counted against nothing) to say it is alive.
//!
//! Version 3 added the guest's own supplicant: a VM created with
//! [`Request::VmCreatedRelaying`] has its partition's supplicant requests
//! (TA loading, storage, sockets, plugins) sent to the VMM on one of the
//! VM's calls in progress ([`RpcRequest::Supplicant`], with the input
//! bytes), for its guest's tee-supplicant to serve; the VMM answers
//! [`Reply::Supplicant`] (with the output bytes). The guest's buffers are
//! named by the guest's cookies, never by address.
//!
//! Version 4 added the call wait: a peer may ask ([`Request::CallWait`])
//! that a call still in the TEE be answered only when it finished, needs
//! the normal world, or the wait passed, rather than at once with
//! FOREIGN_INTR, so that a short call costs one request and its guest
//! one exit; the service grants at most what its policy allows the peer
//! ([`MAX_CALL_WAIT_US`] by default).
//!
//! Version 4 also added shared guest memory: a VMM on a Unix socket whose
//! guest RAM is a sealed memfd may pass it to the service
//! ([`Request::ShareMemory`], the file with the byte after the frame, as
//! vhost-user passes its memory table), and that VM's memory parameters
//! then go by reference ([`Param::SharedMemref`], [`PageList`]: guest page
//! addresses, checked against the regions shared) instead of by value:
//! nothing is copied, and the TEE reads and writes the guest's own pages.
//!
//! Unless shared, guest memory never crosses the wire by reference. A
//! memory parameter travels as a [`Span`]: which buffer (its size and offset in its first
//! page, or the cookie of a registered buffer, never guest addresses), the
//! range, and the range's bytes. The service answers with [`Write`]s, the
//! bytes the TEE wrote, by span *slot*: spans are numbered in the order
//! they were sent for one thread's call, from 0, those of the
//! [`Request::Start`] first, then those of each [`Request::Resume`] reply.

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 4;

/// The oldest version a service still serves: version 1 peers get the
/// version 1 welcome ([`Response::Hello`]) and no keepalive.
pub const OLDEST_PROTOCOL_VERSION: u32 = 1;

/// The first bytes of a [`Hello`]: not a version, a check that the peer
/// speaks this protocol at all.
pub const MAGIC: [u8; 8] = *b"tosfwdTE";

/// The longest frame either side sends or accepts (8 MiB): room for the
/// data of a call whose every memory parameter is as large as the
/// default quotas allow (129 pages).
pub const MAX_FRAME: u32 = 8 << 20;

/// The longest call wait a service grants ([`Request::CallWait`]) unless
/// its policy says otherwise (`max_call_wait_us`), in microseconds: one
/// 100 Hz tick, as long as a guest's interrupts may wait for a VMM that
/// waits for its call.
pub const MAX_CALL_WAIT_US: u32 = 10_000;

/// The longest name a VMM gives itself in [`Hello`].
pub const MAX_NAME: usize = 256;

/// A VMM's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The first request of a connection.
    Hello(Hello),
    /// A VM appears: [`Response::Created`].
    VmCreated {
        /// The VM's id on this connection.
        client: u16,
    },
    /// A VM is gone: [`Response::Ack`].
    VmDestroyed {
        /// The VM.
        client: u16,
    },
    /// ENABLE_SHM_CACHE: [`Response::ShmCache`].
    EnableShmCache {
        /// The VM.
        client: u16,
    },
    /// DISABLE_SHM_CACHE: [`Response::Disabled`].
    DisableShmCache {
        /// The VM.
        client: u16,
    },
    /// Starts a standard call on a free thread: [`Response::Step`].
    Start {
        /// The VM.
        client: u16,
        /// The thread.
        thread: u32,
        /// The call.
        call: Call,
    },
    /// Resumes a call parked in an RPC: [`Response::Step`].
    Resume {
        /// The VM.
        client: u16,
        /// The thread.
        thread: u32,
        /// The normal world's answer to the RPC.
        reply: Reply,
    },
    /// A parked call will never be resumed: [`Response::Ack`].
    Abandon {
        /// The VM.
        client: u16,
        /// The thread.
        thread: u32,
    },
    /// The peer is alive and has nothing to ask (version 2):
    /// [`Response::Pong`]. It counts against no quota.
    Ping,
    /// A VM appears whose partition's supplicant requests its guest's own
    /// tee-supplicant serves (version 3): [`Response::Created`].
    VmCreatedRelaying {
        /// The VM's id on this connection.
        client: u16,
    },
    /// From now on, a call of this connection still in the TEE is
    /// answered when it finished, needs the normal world (an RPC, a
    /// relayed supplicant request) or `micros` passed, whichever comes
    /// first; 0 (the default) answers FOREIGN_INTR at once (version 4):
    /// [`Response::CallWaitSet`]. The peer chooses, since its guest's
    /// interrupts wait with it; the service grants at most what its
    /// policy allows the peer ([`MAX_CALL_WAIT_US`] by default).
    CallWait {
        /// The wait asked for, in microseconds.
        micros: u32,
    },
    /// The VM's guest RAM, shared (version 4): the file is a memfd sealed
    /// against shrinking, sent with the one byte [`SHARE_MARKER`] right
    /// after this frame (SCM_RIGHTS; Unix sockets only). Before the VM's
    /// first call; at most [`MAX_SHARED_REGIONS`] regions, page-aligned,
    /// apart, within the file: [`Response::Shared`].
    ShareMemory {
        /// The VM.
        client: u16,
        /// Where guest RAM is in the file (at most
        /// [`MAX_SHARED_REGIONS`]: decoding refuses more).
        #[serde(deserialize_with = "bounded::vec::<_, _, MAX_SHARED_REGIONS>")]
        regions: Vec<MemRegion>,
    },
}

/// The byte that carries the file of a [`Request::ShareMemory`].
pub const SHARE_MARKER: u8 = b'M';

/// The most regions a [`Request::ShareMemory`] names.
pub const MAX_SHARED_REGIONS: usize = 8;

/// A region of guest RAM in a shared file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemRegion {
    /// Its guest physical address.
    pub gpa: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Where it starts in the file.
    pub offset: u64,
}

/// Who is calling, and in which protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// The protocol version the VMM speaks.
    pub version: u32,
    /// A name for the service's logs (at most [`MAX_NAME`] bytes).
    pub name: String,
}

impl Hello {
    /// This crate's greeting, with `name`.
    pub fn new(name: &str) -> Hello {
        let mut end = name.len().min(MAX_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            name: name[..end].to_owned(),
        }
    }
}

/// The service's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Welcome to a version 1 peer: what the TEE is.
    Hello {
        /// The protocol version the service speaks (the VMM's).
        version: u32,
        /// Concurrent calls per VM.
        thread_count: u32,
        /// The Trusted OS revision.
        revision: Revision,
    },
    /// The connection is refused (then closed).
    Refused {
        /// Why, for the VMM's log.
        reason: String,
    },
    /// To [`Request::VmCreated`].
    Created(Result<(), CreateError>),
    /// To [`Request::VmDestroyed`] and [`Request::Abandon`].
    Ack,
    /// To [`Request::EnableShmCache`]: `false` if busy.
    ShmCache(bool),
    /// To [`Request::DisableShmCache`].
    Disabled(Disabled),
    /// To [`Request::Start`] and [`Request::Resume`].
    Step(StepAnswer),
    /// To [`Request::Ping`].
    Pong,
    /// Welcome (version 2 and later): what the TEE is, and how long the
    /// peer may be silent.
    Welcome(Welcome),
    /// To [`Request::CallWait`]: the wait granted, in microseconds.
    CallWaitSet {
        /// At most what was asked and what the policy allows.
        micros: u32,
    },
    /// To [`Request::ShareMemory`]: shared, or why not (the VM's memory
    /// then goes by value).
    Shared(Result<(), String>),
}

/// The service's welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the service speaks (the VMM's).
    pub version: u32,
    /// Concurrent calls per VM.
    pub thread_count: u32,
    /// The Trusted OS revision.
    pub revision: Revision,
    /// After how many milliseconds without a request the service drops
    /// the peer (its VMs torn down); `None`: never. A peer with nothing
    /// to ask sends [`Request::Ping`] well within it.
    pub idle_timeout_ms: Option<u64>,
}

/// GET_OS_REVISION's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Build id.
    pub build_id: u32,
}

/// Why a VM was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateError {
    /// The id is in use on this connection.
    Exists,
    /// Any other reason.
    Refused(String),
}

/// DISABLE_SHM_CACHE's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disabled {
    /// A cached RPC argument buffer given back.
    Freed(u64),
    /// Empty (and disabled).
    Empty,
    /// Calls in progress.
    Busy,
}

/// A standard call, translated (the mediator's `StdCall`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// What to do.
    pub command: Command,
    /// Session id (the service's).
    pub session: u32,
    /// Cancellation id.
    pub cancel_id: u32,
    /// Parameters.
    pub params: Vec<Param>,
}

/// The command of a [`Call`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// OPEN_SESSION.
    OpenSession {
        /// The TA's UUID (RFC 4122 octets).
        ta: [u8; 16],
        /// The client's UUID.
        client: [u8; 16],
        /// The login (OPTEE_MSG_LOGIN_*).
        login: u32,
    },
    /// INVOKE_COMMAND.
    Invoke {
        /// The TA's function.
        func: u32,
    },
    /// CLOSE_SESSION.
    CloseSession,
    /// CANCEL.
    Cancel,
    /// REGISTER_SHM of a buffer of this shape.
    RegisterShm {
        /// The VMM's cookie for it.
        cookie: u64,
        /// Its shape.
        buffer: Buffer,
    },
    /// UNREGISTER_SHM.
    UnregisterShm {
        /// The cookie.
        cookie: u64,
    },
    /// REGISTER_SHM of guest pages, in a VM whose memory is shared
    /// (version 4).
    RegisterShared {
        /// The VMM's cookie for it.
        cookie: u64,
        /// The buffer.
        buffer: PageList,
    },
}

/// A guest buffer in shared memory (version 4): its pages' guest
/// addresses, where its data starts in the first, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageList {
    /// Offset of the data in the first 4 KiB page (below 4096).
    pub page_offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// The guest physical address of each 4 KiB page (at most
    /// [`MAX_PAGE_LIST`]: decoding refuses more).
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_PAGE_LIST>")]
    pub pages: Vec<u64>,
}

/// The most pages a [`PageList`] names: the largest buffer a policy may
/// allow (`max_pages_per_buffer`). A page address of value zero takes one
/// byte on the wire and eight in memory: the bound keeps a frame's list
/// from growing eightfold before the policy is even asked.
pub const MAX_PAGE_LIST: usize = 65536;

/// Sequences decoded with a bound on their length, checked against the
/// length the encoding declares before anything is allocated.
mod bounded {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    struct Bounded<T, const N: usize>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {N} elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let declared = seq.size_hint().unwrap_or(0);
            if declared > N {
                return Err(A::Error::invalid_length(declared, &self));
            }
            let mut v = Vec::with_capacity(declared);
            while let Some(e) = seq.next_element()? {
                if v.len() == N {
                    return Err(A::Error::invalid_length(N + 1, &self));
                }
                v.push(e);
            }
            Ok(v)
        }
    }

    /// A `Vec` of at most `N` elements.
    pub fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(Bounded::<T, N>(PhantomData))
    }
}

/// A range of a guest buffer in shared memory (version 4): no bytes, the
/// TEE reads and writes the guest's pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRef {
    /// The buffer.
    pub buffer: SharedBuffer,
    /// Offset of the range in the buffer's data.
    pub offset: u64,
    /// The range's length.
    pub len: u64,
}

/// The buffer a [`SharedRef`] is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SharedBuffer {
    /// A buffer of this call only (temporary memory, or an RPC buffer).
    Pages(PageList),
    /// A buffer registered with [`Command::RegisterShared`].
    Registered {
        /// Its cookie.
        cookie: u64,
    },
}

/// The shape of a guest buffer: no addresses, only where its data starts
/// in its first page and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buffer {
    /// Offset of the data in the first 4 KiB page (below 4096).
    pub page_offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A parameter's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// To the TEE.
    In,
    /// From the TEE.
    Out,
    /// Both.
    InOut,
}

/// A parameter of a [`Call`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Param {
    /// Unused.
    None,
    /// Values.
    Value {
        /// Direction.
        dir: Dir,
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// Memory; `mem` is `None` for a NULL reference.
    Memref {
        /// Direction.
        dir: Dir,
        /// The memory and its bytes.
        mem: Option<Span>,
        /// The size field.
        size: u64,
    },
    /// Memory of a VM whose memory is shared (version 4); `mem` is `None`
    /// for a NULL reference.
    SharedMemref {
        /// Direction.
        dir: Dir,
        /// The memory.
        mem: Option<SharedRef>,
        /// The size field.
        size: u64,
    },
}

/// A range of a guest buffer, with its bytes (whatever the direction: an
/// output range carries the guest's bytes too, so that what the TEE does
/// not write stays as it was).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The buffer.
    pub buffer: SpanBuffer,
    /// Offset of the range in the buffer's data.
    pub offset: u64,
    /// The range's bytes (their count is the range's size).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("buffer", &self.buffer)
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .finish()
    }
}

/// The buffer a [`Span`] is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanBuffer {
    /// A buffer of this call only (temporary memory, or an RPC buffer).
    Temporary(Buffer),
    /// A buffer registered on this connection with REGISTER_SHM.
    Registered {
        /// Its cookie.
        cookie: u64,
    },
}

/// The normal world's answer to an RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The RPC argument buffer's cookie, `None` if none was allocated.
    Alloc(Option<u64>),
    /// Freed.
    Free,
    /// The guest took its interrupt.
    ForeignIntr,
    /// An RPC command's answer.
    Cmd {
        /// Whether it reached the guest and came back.
        delivered: bool,
        /// The guest's result.
        ret: u32,
        /// One per parameter sent.
        params: Vec<RpcOut>,
    },
    /// The guest's answer to [`RpcRequest::Supplicant`] (version 3).
    Supplicant {
        /// The request's id.
        id: u64,
        /// TEEC_* result.
        ret: u32,
        /// One per parameter of the request.
        params: Vec<RelayOut>,
    },
}

/// A parameter of a relayed supplicant request (version 3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayParam {
    /// Unused.
    None,
    /// Values.
    Value {
        /// Direction.
        dir: Dir,
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// A NULL memory reference of `size`.
    NullMemref {
        /// Direction.
        dir: Dir,
        /// The size field.
        size: u64,
    },
    /// A range of a buffer the guest's supplicant allocated.
    Memref {
        /// Direction.
        dir: Dir,
        /// The guest's cookie of the buffer.
        cookie: u64,
        /// Offset in the buffer.
        offs: u64,
        /// Size of the range.
        size: u64,
        /// The input bytes (empty for an output).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

impl std::fmt::Debug for RelayParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayParam::None => f.write_str("None"),
            RelayParam::Value { dir, a, b, c } => f
                .debug_struct("Value")
                .field("dir", dir)
                .field("a", a)
                .field("b", b)
                .field("c", c)
                .finish(),
            RelayParam::NullMemref { dir, size } => f
                .debug_struct("NullMemref")
                .field("dir", dir)
                .field("size", size)
                .finish(),
            RelayParam::Memref {
                dir,
                cookie,
                offs,
                size,
                data,
            } => f
                .debug_struct("Memref")
                .field("dir", dir)
                .field("cookie", cookie)
                .field("offs", offs)
                .field("size", size)
                .field("len", &data.len())
                .finish(),
        }
    }
}

/// What the guest answered for one parameter (version 3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayOut {
    /// Nothing.
    None,
    /// Output values.
    Value {
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// An output memory reference: the size the guest reported and the
    /// bytes it wrote.
    Memref {
        /// The size field.
        size: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// SHM_ALLOC: the guest's buffer, taken by the VMM.
    Allocated {
        /// The guest's cookie.
        cookie: u64,
    },
    /// SHM_ALLOC: a buffer the guest allocated that the VMM refused.
    Refused {
        /// The guest's cookie.
        cookie: u64,
    },
}

impl std::fmt::Debug for RelayOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayOut::None => f.write_str("None"),
            RelayOut::Value { a, b, c } => f
                .debug_struct("Value")
                .field("a", a)
                .field("b", b)
                .field("c", c)
                .finish(),
            RelayOut::Memref { size, data } => f
                .debug_struct("Memref")
                .field("size", size)
                .field("len", &data.len())
                .finish(),
            RelayOut::Allocated { cookie } => {
                f.debug_struct("Allocated").field("cookie", cookie).finish()
            }
            RelayOut::Refused { cookie } => {
                f.debug_struct("Refused").field("cookie", cookie).finish()
            }
        }
    }
}

/// The answer to an RPC parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcOut {
    /// Nothing.
    None,
    /// Values.
    Value {
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// A buffer the guest allocated (SHM_ALLOC).
    Memref {
        /// The guest's cookie.
        cookie: u64,
        /// The size it reported.
        size: u64,
        /// The buffer (a [`SpanBuffer::Temporary`] span over all of it),
        /// `None` if the mediator refused it.
        mem: Option<Span>,
    },
    /// A buffer the guest allocated (SHM_ALLOC), in a VM whose memory is
    /// shared (version 4).
    SharedMemref {
        /// The guest's cookie.
        cookie: u64,
        /// The size it reported.
        size: u64,
        /// The buffer ([`SharedBuffer::Pages`], all of it), `None` if the
        /// mediator refused it.
        mem: Option<SharedRef>,
    },
}

/// What a call did: the bytes the TEE wrote, and the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAnswer {
    /// Bytes written since the previous answer for this thread.
    pub writes: Vec<Write>,
    /// Finished or parked.
    pub step: Step,
}

/// Bytes the TEE wrote into a span.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// The span's slot.
    pub slot: u32,
    /// Offset in the span.
    pub offset: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("slot", &self.slot)
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A call's step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Finished, with its results.
    Done(Outcome),
    /// Parked until the normal world answers this.
    Rpc(RpcRequest),
}

/// A finished call's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// TEEC_* result.
    pub ret: u32,
    /// Its origin.
    pub ret_origin: u32,
    /// Session id (OPEN_SESSION).
    pub session: u32,
    /// The parameters' outputs, one per parameter of the call.
    pub params: Vec<ParamOut>,
}

/// A parameter's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamOut {
    /// Nothing.
    None,
    /// Values.
    Value {
        /// a.
        a: u64,
        /// b.
        b: u64,
        /// c.
        c: u64,
    },
    /// A memory parameter's size field.
    Memref {
        /// Size.
        size: u64,
    },
}

/// The TEE's request to the normal world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcRequest {
    /// RPC_ALLOC of an argument buffer.
    Alloc {
        /// Size in bytes.
        size: u64,
    },
    /// RPC_FREE.
    Free {
        /// Cookie.
        cookie: u64,
    },
    /// RPC_FOREIGN_INTR.
    ForeignIntr,
    /// RPC_CMD in the argument buffer `cookie`.
    Cmd {
        /// The argument buffer.
        cookie: u64,
        /// The request.
        arg: Arg,
    },
    /// A supplicant request of the VM's partition for its guest's own
    /// tee-supplicant (version 3, VMs created with
    /// [`Request::VmCreatedRelaying`]): the VMM carries it into the guest
    /// and answers [`Reply::Supplicant`].
    Supplicant {
        /// Its id, for the answer.
        id: u64,
        /// OPTEE_RPC_CMD_*.
        func: u32,
        /// Its parameters.
        params: Vec<RelayParam>,
    },
}

/// An `optee_msg_arg` of an RPC command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    /// OPTEE_RPC_CMD_*.
    pub cmd: u32,
    /// Function.
    pub func: u32,
    /// Session.
    pub session: u32,
    /// Cancellation id.
    pub cancel_id: u32,
    /// Result.
    pub ret: u32,
    /// Its origin.
    pub ret_origin: u32,
    /// Parameters: attribute and three words each.
    pub params: Vec<[u64; 4]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_and_regions_decode_only_within_their_bounds() {
        let list = |n: usize| PageList {
            page_offset: 0,
            size: n as u64 * 4096,
            pages: vec![0; n],
        };
        let ok = postcard::to_stdvec(&list(MAX_PAGE_LIST)).unwrap();
        assert_eq!(
            postcard::from_bytes::<PageList>(&ok).unwrap(),
            list(MAX_PAGE_LIST)
        );
        // One more page: refused from the declared length, 65,540 bytes
        // that would have been 512 KiB.
        let over = postcard::to_stdvec(&list(MAX_PAGE_LIST + 1)).unwrap();
        assert!(postcard::from_bytes::<PageList>(&over).is_err());

        let share = |n: usize| Request::ShareMemory {
            client: 1,
            regions: vec![
                MemRegion {
                    gpa: 0,
                    size: 4096,
                    offset: 0,
                };
                n
            ],
        };
        let ok = postcard::to_stdvec(&share(MAX_SHARED_REGIONS)).unwrap();
        assert_eq!(
            postcard::from_bytes::<Request>(&ok).unwrap(),
            share(MAX_SHARED_REGIONS)
        );
        let over = postcard::to_stdvec(&share(MAX_SHARED_REGIONS + 1)).unwrap();
        assert!(postcard::from_bytes::<Request>(&over).is_err());
    }

    /// A version 1 peer's messages encode as they did in version 1: the
    /// service can go on serving it.
    #[test]
    fn version_1_messages_keep_their_encoding() {
        let hello = Request::Hello(Hello {
            magic: MAGIC,
            version: 1,
            name: "x".to_owned(),
        });
        let mut want = vec![0];
        want.extend_from_slice(b"tosfwdTE");
        want.extend_from_slice(&[1, 1, b'x']);
        assert_eq!(postcard::to_stdvec(&hello).unwrap(), want);
        let welcome = Response::Hello {
            version: 1,
            thread_count: 2,
            revision: Revision {
                major: 4,
                minor: 5,
                build_id: 6,
            },
        };
        assert_eq!(postcard::to_stdvec(&welcome).unwrap(), [0, 1, 2, 4, 5, 6]);
        let abandon = Request::Abandon {
            client: 1,
            thread: 2,
        };
        assert_eq!(postcard::to_stdvec(&abandon).unwrap(), [7, 1, 2]);
        assert_eq!(postcard::to_stdvec(&Request::Ping).unwrap(), [8]);
        assert_eq!(postcard::to_stdvec(&Response::Pong).unwrap(), [7]);
    }
}
