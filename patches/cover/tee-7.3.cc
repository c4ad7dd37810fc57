# Cc of patches/tee-7.3, merged by scripts/series-send with what
# get_maintainer.pl reports. A new uAPI (TEE_IOC_VM_CREATE): linux-api.
linux-api@vger.kernel.org
# A new kselftest target (tools/testing/selftests/tee): Shuah Khan and the list.
Shuah Khan <shuah@kernel.org>
linux-kselftest@vger.kernel.org
# OP-TEE's own list.
op-tee@lists.trustedfirmware.org
