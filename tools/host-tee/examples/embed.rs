// SPDX-License-Identifier: Apache-2.0 OR MIT
//! How a VMM embeds the mediator with the host's OP-TEE as its backend (the
//! top README's VMM quick start shows its aarch64 main). A skeleton, not a VMM:
//! it stops at the vCPU's first exit that is not a forwarded call, and
//! loading a guest (memslot, vCPU init, kernel, a device tree with an OP-TEE
//! node) is tools/vmm's work. Compiled for aarch64 by scripts/test (`scripts/
//! cross-build --clippy`); elsewhere it only says that it is arm64's.

#[cfg(not(target_arch = "aarch64"))]
fn main() {
    eprintln!("embed: KVM's SMCCC filter is arm64's: build for aarch64-unknown-linux-gnu");
    std::process::exit(1);
}

#[cfg(target_arch = "aarch64")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use host_tee::{DevTee, HostTee};
    use kvm_ioctls::{Kvm, VcpuExit};
    use optee_mediator::{kvm::handle_hypercall_exit, kvm_filters, ClientId, Mediator, Policy};
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    let vm = Kvm::new()?.create_vm()?;
    // KVM forwards the Trusted OS ranges to the VMM: KVM_ARM_VM_SMCCC_FILTER
    // (FWD_TO_USER), one KVM_SET_DEVICE_ATTR per range, before the first KVM_RUN.
    for filter in kvm_filters() {
        vm.set_device_attr(&smccc::kvm::filter_attr(Some(&filter)))?;
    }
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0x8000_0000), 256 << 20)])?;
    // One mediator per VM (client id 0 is the hypervisor's: VMs count from 1);
    // its backend, a TEE context of the host's /dev/tee0
    // (optee_mediator::UserTee would be a TEE in userspace instead).
    // SAFETY: `ram` stays mapped until the mediator is dropped, below.
    let tee = unsafe { HostTee::on_device(DevTee::open("/dev/tee0")?) };
    let mut mediator = Mediator::new(ClientId(1), Policy::default(), tee)?;
    let mut vcpu = vm.create_vcpu(0)?; // then a memslot of `ram`, KVM_ARM_VCPU_INIT, the guest
    while let VcpuExit::Hypercall(_) = vcpu.run()? {
        // Reads the registers the call uses, answers, writes x0..x3.
        handle_hypercall_exit(&mut vcpu, &mut mediator, &ram)?;
    }
    drop(mediator); // VM_DESTROYED: the VM's sessions, buffers, parked calls freed
    Ok(())
}
