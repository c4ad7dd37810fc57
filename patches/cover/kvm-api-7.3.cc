# Cc of patches/kvm-api-7.3, merged by scripts/series-send with what
# get_maintainer.pl reports (KVM, KVM/arm64, their lists).
# The KVM/arm64 maintainers, through whom the fix would go:
Marc Zyngier <maz@kernel.org>
Oliver Upton <oupton@kernel.org>
kvmarm@lists.linux.dev
