# Cc of patches/kvm-tos-7.3, merged by scripts/series-send with what
# get_maintainer.pl reports. Documentation and selftests of existing
# behaviour: no uAPI change, so not linux-api.
Marc Zyngier <maz@kernel.org>
Oliver Upton <oupton@kernel.org>
kvmarm@lists.linux.dev
# The kselftest list, for the selftests' KTAP reporting.
linux-kselftest@vger.kernel.org
