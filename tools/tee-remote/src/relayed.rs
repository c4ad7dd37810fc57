// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Relayed supplicant requests and their answers on the wire (version 3):
//! [`optee_mediator::relay`]'s types to [`crate::wire`]'s and back, each
//! decoded value bounded before it is used.

use optee_mediator::msg::Dir;
use optee_mediator::relay::{Answer, Forwarded, FwdOut, FwdParam, MAX_PARAMS};

use crate::wire::{self, RelayOut, RelayParam};

/// The wire's direction.
pub fn to_wire_dir(d: Dir) -> wire::Dir {
    match d {
        Dir::In => wire::Dir::In,
        Dir::Out => wire::Dir::Out,
        Dir::InOut => wire::Dir::InOut,
    }
}

/// The mediator's direction.
pub fn from_wire_dir(d: wire::Dir) -> Dir {
    match d {
        wire::Dir::In => Dir::In,
        wire::Dir::Out => Dir::Out,
        wire::Dir::InOut => Dir::InOut,
    }
}

/// A request as it goes to the VMM: its function and parameters.
pub fn request_to_wire(req: Forwarded) -> (u32, Vec<RelayParam>) {
    let params = req
        .params
        .into_iter()
        .map(|p| match p {
            FwdParam::None => RelayParam::None,
            FwdParam::Value { dir, a, b, c } => RelayParam::Value {
                dir: to_wire_dir(dir),
                a,
                b,
                c,
            },
            FwdParam::NullMemref { dir, size } => RelayParam::NullMemref {
                dir: to_wire_dir(dir),
                size,
            },
            FwdParam::Memref {
                dir,
                cookie,
                offs,
                size,
                data,
            } => RelayParam::Memref {
                dir: to_wire_dir(dir),
                cookie,
                offs,
                size,
                data,
            },
        })
        .collect();
    (req.func, params)
}

/// A request as the VMM received it; `None` if it has more parameters
/// than a supplicant request has, or input bytes beyond its range.
pub fn request_from_wire(func: u32, params: Vec<RelayParam>) -> Option<Forwarded> {
    if params.len() > MAX_PARAMS {
        return None;
    }
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        out.push(match p {
            RelayParam::None => FwdParam::None,
            RelayParam::Value { dir, a, b, c } => FwdParam::Value {
                dir: from_wire_dir(dir),
                a,
                b,
                c,
            },
            RelayParam::NullMemref { dir, size } => FwdParam::NullMemref {
                dir: from_wire_dir(dir),
                size,
            },
            RelayParam::Memref {
                dir,
                cookie,
                offs,
                size,
                data,
            } => {
                if data.len() as u64 > size {
                    return None;
                }
                FwdParam::Memref {
                    dir: from_wire_dir(dir),
                    cookie,
                    offs,
                    size,
                    data,
                }
            }
        });
    }
    Some(Forwarded { func, params: out })
}

/// An answer as it goes back to the service: its result and outputs.
pub fn answer_to_wire(answer: Answer) -> (u32, Vec<RelayOut>) {
    let params = answer
        .params
        .into_iter()
        .map(|p| match p {
            FwdOut::None => RelayOut::None,
            FwdOut::Value { a, b, c } => RelayOut::Value { a, b, c },
            FwdOut::Memref { size, data } => RelayOut::Memref { size, data },
            FwdOut::Allocated { cookie } => RelayOut::Allocated { cookie },
            FwdOut::Refused { cookie } => RelayOut::Refused { cookie },
        })
        .collect();
    (answer.ret, params)
}

/// An answer as the service received it for a request of `asked`
/// parameters; `None` if it has more outputs than that.
pub fn answer_from_wire(ret: u32, params: Vec<RelayOut>, asked: usize) -> Option<Answer> {
    if params.len() > asked {
        return None;
    }
    let params = params
        .into_iter()
        .map(|p| match p {
            RelayOut::None => FwdOut::None,
            RelayOut::Value { a, b, c } => FwdOut::Value { a, b, c },
            RelayOut::Memref { size, data } => FwdOut::Memref { size, data },
            RelayOut::Allocated { cookie } => FwdOut::Allocated { cookie },
            RelayOut::Refused { cookie } => FwdOut::Refused { cookie },
        })
        .collect();
    Some(Answer { ret, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_answer_cross_the_wire_unchanged() {
        let req = Forwarded {
            func: 2,
            params: vec![
                FwdParam::Value {
                    dir: Dir::In,
                    a: 1,
                    b: 2,
                    c: 3,
                },
                FwdParam::NullMemref {
                    dir: Dir::Out,
                    size: 9,
                },
                FwdParam::Memref {
                    dir: Dir::InOut,
                    cookie: 7,
                    offs: 8,
                    size: 4,
                    data: vec![1, 2],
                },
                FwdParam::None,
            ],
        };
        let (func, params) = request_to_wire(req.clone());
        assert_eq!(request_from_wire(func, params), Some(req));
        let answer = Answer {
            ret: 5,
            params: vec![
                FwdOut::Value { a: 1, b: 2, c: 3 },
                FwdOut::Memref {
                    size: 9,
                    data: vec![4],
                },
                FwdOut::Allocated { cookie: 3 },
                FwdOut::Refused { cookie: 4 },
            ],
        };
        let (ret, params) = answer_to_wire(answer.clone());
        assert_eq!(answer_from_wire(ret, params, 4), Some(answer));
    }

    #[test]
    fn too_many_parameters_or_bytes_beyond_a_range_are_refused() {
        let many = vec![RelayParam::None; MAX_PARAMS + 1];
        assert_eq!(request_from_wire(1, many), None);
        let beyond = vec![RelayParam::Memref {
            dir: wire::Dir::In,
            cookie: 1,
            offs: 0,
            size: 2,
            data: vec![0; 3],
        }];
        assert_eq!(request_from_wire(1, beyond), None);
        assert_eq!(answer_from_wire(0, vec![RelayOut::None; 2], 1), None);
    }
}
