# Cc of patches/kvm-pvm-7.3 (an RFC), merged by scripts/series-send with
# what get_maintainer.pl reports.
# The KVM/arm64 maintainers:
Marc Zyngier <maz@kernel.org>
Oliver Upton <oupton@kernel.org>
kvmarm@lists.linux.dev
# The pKVM developers (pKVM has no MAINTAINERS entry of its own; Fuad
# Tabba at the address MAINTAINERS gives him as a KVM/arm64 reviewer):
Will Deacon <will@kernel.org>
Quentin Perret <qperret@google.com>
Fuad Tabba <fuad.tabba@linux.dev>
Vincent Donnefort <vdonnefort@google.com>
Sebastian Ene <sebastianene@google.com>
# The author of "KVM: arm64: Prevent FWD_TO_USER of SMCCC to pKVM", whose
# v2 reserves the same function IDs as patch 1:
Pierre-Clément Tosi <ptosi@google.com>
# KVM selftests' common library (patch 3 changes lib/kvm_util.c):
Sean Christopherson <seanjc@google.com>
Paolo Bonzini <pbonzini@redhat.com>
# A uAPI change (protected VMs get a VM attribute they were refused):
linux-api@vger.kernel.org
