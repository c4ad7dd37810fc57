# Cc of patches/guest-7.3 (an RFC), merged by scripts/series-send with what
# get_maintainer.pl reports (the TEE subsystem's and OP-TEE driver's
# maintainers, for drivers/tee/ and Documentation/tee/).
# OP-TEE's own list.
op-tee@lists.trustedfirmware.org
# A driver hardened against a hostile host in a confidential guest, and the
# cc_platform_has(CC_ATTR_GUEST_MEM_ENCRYPT) predicate: the confidential
# computing list.
linux-coco@lists.linux.dev
# The guest is a pKVM protected VM (arch/arm64's MEM_SHARE/MEM_UNSHARE
# behind set_memory_decrypted()): the KVM/arm64 maintainers and the pKVM
# developers (Fuad Tabba at the address MAINTAINERS gives him as a
# KVM/arm64 reviewer).
Marc Zyngier <maz@kernel.org>
Oliver Upton <oupton@kernel.org>
kvmarm@lists.linux.dev
Will Deacon <will@kernel.org>
Quentin Perret <qperret@google.com>
Fuad Tabba <fuad.tabba@linux.dev>
# dma-direct's rule for pages whose sharing state is uncertain, which
# patch 5 follows (the open question of the cover letter):
Christoph Hellwig <hch@lst.de>
iommu@lists.linux.dev
