// SPDX-License-Identifier: Apache-2.0 OR MIT
/*
 * vmtest-kexec IMAGE INITRD CMDLINE: boot IMAGE with INITRD and CMDLINE
 * now, by kexec_file_load(2) and reboot(LINUX_REBOOT_CMD_KEXEC), without
 * kexec-tools (the bench's rootfs has no room for its libraries). Built
 * static by scripts/vmtest for the emulated arm64 host; the kernel needs
 * CONFIG_KEXEC_FILE. The reboot runs the drivers' .shutdown, as a real
 * kexec does. Prints one line and exits 1 if anything fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int kernel, initrd;

	if (argc != 4) {
		fprintf(stderr, "usage: vmtest-kexec IMAGE INITRD CMDLINE\n");
		return 2;
	}
	kernel = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (kernel < 0) {
		fprintf(stderr, "vmtest-kexec: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	initrd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (initrd < 0) {
		fprintf(stderr, "vmtest-kexec: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	/* The length counts the terminating NUL */
	if (syscall(SYS_kexec_file_load, kernel, initrd, strlen(argv[3]) + 1,
		    argv[3], 0UL)) {
		fprintf(stderr, "vmtest-kexec: kexec_file_load: %s\n",
			strerror(errno));
		return 1;
	}
	sync();
	reboot(LINUX_REBOOT_CMD_KEXEC);
	fprintf(stderr, "vmtest-kexec: reboot(KEXEC): %s\n", strerror(errno));
	return 1;
}
