#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# OP-TEE's VMs across kexec, on the emulated host of the boots that
# scripts/vmtest marks tosfwd.kexec=before (installed as /optee/kexec; the
# init runs "before" after its tests, and the kexec'd kernel's init runs
# only "after"). Markers (@@KX*) go to the serial log for
# scripts/vmtest-kexec.awk.
#
#   before: a guest runs in an OP-TEE VM of its own (tosfwd-vmm --tee host)
#           and stays up; with its VM live, the host kexecs into the same
#           kernel, its rootfs packed as the new initramfs (the host's
#           secure storage comes along, as it would on a disk).
#   after:  the TEE series' driver is up again, VMs are created again (its
#           selftest tee_vm, 50 VMs in a row among them), and the
#           partitions are still apart: the host finds what it stored
#           before, a new guest finds nothing of anyone's and marks its
#           own, which the host does not see.
cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
mem=256

# part WHO STORAGE STEPS: one partition run (as scripts/vmtest's), framed.
part() {
	echo "@@KXPART $1 $3"
	if [ "$1" = host ]; then
		for step in $(echo "$3" | tr , ' '); do
			/optee/tosfwd-tee-client --partition-${step%%:*} ${step#*:} </dev/null 2>&1 ||
				{ echo "@@KXPARTEND $1 rc=1"; return 1; }
		done
		echo "@@KXPARTEND $1 rc=0"
		return 0
	fi
	timeout 300 /vmm/tosfwd-vmm --kernel /vmm/Image --initrd /optee/guest.cpio \
		--memory $mem --tee host --tee-storage "$2" \
		--append "tosfwd.partition=$3" </dev/null >/tmp/kx-part.log 2>&1
	grep -E 'partition: |@@GXPART' /tmp/kx-part.log
	if grep -q '@@GXPART rc=0' /tmp/kx-part.log; then
		echo "@@KXPARTEND $1 rc=0"
		return 0
	fi
	echo "@@KXPARTEND $1 rc=1"
	return 1
}

before() {
	echo "@@KXBEGIN before"
	# tosfwd.hold: the guest stays up after its step, its VMM holding the
	# VM's context (and so the VM) until the kexec.
	/vmm/tosfwd-vmm -v --kernel /vmm/Image --initrd /optee/guest.cpio --memory $mem \
		--tee host --tee-storage /tmp/kx-storage \
		--append "tosfwd.partition=mark:before-kexec tosfwd.hold=1" </dev/null >/tmp/kx-vmm.log 2>&1 &
	i=0
	while ! grep -q '@@GXPART rc=' /tmp/kx-vmm.log && [ $i -lt 1200 ]; do
		sleep 0.25
		i=$((i + 1))
	done
	grep -E 'OP-TEE VM|partition: |@@GXPART' /tmp/kx-vmm.log | sed 's/^/@@KXVMM /'
	if ! grep -q '@@GXPART rc=0' /tmp/kx-vmm.log; then
		echo "@@KXEND before rc=1 the guest in its own VM did not pass its step"
		return 1
	fi
	s=$(cs)
	cmdline=$(sed 's/tosfwd\.kexec=before/tosfwd.kexec=after/' /proc/cmdline)
	# -xdev: /proc, /sys, /dev and /tmp are mounts of their own.
	(cd / && find . -xdev | cpio -o -H newc 2>/dev/null) >/tmp/kx.cpio
	echo "@@KXEXEC $(wc -c </tmp/kx.cpio) bytes packed in $(($(cs) - s)) cs, VMM $(pidof tosfwd-vmm) running"
	/optee/vmtest-kexec /vmm/Image /tmp/kx.cpio "$cmdline"
	echo "@@KXEND before rc=1 kexec failed: exit $?"
	return 1
}

after() {
	echo "@@KXBEGIN after"
	s=$(cs)
	for a in $(cat /proc/cmdline); do
		case "$a" in tosfwd.epoch=*) date -u -s "@${a#tosfwd.epoch=}" >/dev/null ;; esac
	done
	dmesg | grep -E 'optee' | sed 's/^\[[ 0-9.]*\] /@@KXDMESG /'
	if [ ! -e /dev/tee0 ] || [ ! -e /dev/teepriv0 ]; then
		echo "@@KXEND after rc=1 no /dev/tee0 after the kexec"
		return 1
	fi
	ip link set lo up
	tee-supplicant -d || echo "@@KXDMESG tee-supplicant failed: exit $?"
	/kselftest/tee/tee_vm </dev/null 2>&1 | sed 's/^/@@KXST /'
	rc=0
	# The host's partition was destroyed at shutdown and made again at
	# probe: its storage is kept, its TA instances are new.
	part host - expect-stored:host || rc=1
	part guest-c /tmp/vm-storage-c expect:none,mark:guest-c || rc=1
	part host - expect-stored:host || rc=1
	echo "@@KXEND after rc=$rc cs=$(($(cs) - s))"
}

case "$1" in
before) before ;;
after) after ;;
*) echo "usage: /optee/kexec before|after" >&2; exit 2 ;;
esac
