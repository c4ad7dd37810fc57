// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Generates, once for the whole project, the TEE subsystem's uapi types
//! from the system's copy of include/uapi/linux/tee.h (Debian:
//! linux-libc-dev, and for the aarch64 cross build
//! linux-libc-dev-arm64-cross). `TEE_H` names another header.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=TEE_H");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let candidates: Vec<PathBuf> = match env::var_os("TEE_H") {
        Some(h) => vec![h.into()],
        None => {
            let mut c = Vec::new();
            if arch == "aarch64" {
                c.push("/usr/aarch64-linux-gnu/include/linux/tee.h".into());
            }
            c.push("/usr/include/linux/tee.h".into());
            c
        }
    };
    let Some(header) = candidates.iter().find(|p| p.is_file()) else {
        panic!(
            "include/uapi/linux/tee.h not found (looked at {}): install Debian's linux-libc-dev \
             (and linux-libc-dev-arm64-cross for the aarch64 build), or set TEE_H",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    println!("cargo:rerun-if-changed={}", header.display());
    // <prefix>/include/linux/tee.h: <prefix>/include holds linux/ and asm/.
    let include = header
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("/usr/include"));
    let bindings = bindgen::Builder::default()
        .header(header.display().to_string())
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_type("tee_.*")
        .allowlist_var("TEE_.*")
        .derive_default(true)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {}: {e}", header.display()));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("tee.rs");
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
