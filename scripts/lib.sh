# SPDX-License-Identifier: Apache-2.0 OR MIT
# shellcheck shell=bash
#
# Shared by the scripts in this directory: paths, logging, the private apt
# configuration. Sourced, never run.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything built or downloaded lives outside the repository. Nothing
# depends on it being there: each script recreates what is missing.
CACHE=${TOSFWD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tosfwd}

# Kernel trees the project supports: "version package". A new tree is one
# line here (and its suite in EXTRA_SUITES if the machine's apt lacks it).
KERNELS=(
	"6.12 linux-source-6.12"
	"7.3 linux-source-7.3"
)
# The kernel series, applied by scripts/kernel-build in this order where
# patches/NAME-VERSION/ exists: KVM's distribution patch set (linux-, 6.12
# only), the three KVM submissions of 7.3, each one a maintainer can take on
# its own (kvm-api-: the one-line api.rst fix; kvm-tos-: documentation and
# selftests of Trusted OS call forwarding as KVM does it today; kvm-pvm-: the
# RFC that lets protected VMs use the SMCCC filter, built on kvm-tos), the TEE
# driver's for a guest whose memory is private (guest-: it hardens the SMC ABI
# driver for every kernel, so it goes first) and for the host (tee-, the RFC
# built on it).
SERIES=(linux kvm-api kvm-tos kvm-pvm guest tee)
# A series built on another one (NAME=BASE): BASE's patches come first
# (series-check applies them before checking; series-export exports the
# topic branch from branch BASE of the same tree).
declare -A SERIES_BASE=([kvm-pvm]=kvm-tos [tee]=guest)
# The subject prefix of a series that asks for comments rather than for a
# merge (scripts/series-export; the others are "PATCH").
declare -A SERIES_PREFIX=([kvm-pvm]="RFC PATCH" [tee]="RFC PATCH")
# Series that only a guest's kernel needs: scripts/kernel-build also builds an Image
# without them and without the series after them in SERIES (tee-, built on guest-,
# only matters to a host), the bench's unpatched guest.
GUEST_SERIES=(guest)
# A directory of patches/ with a quilt "series" file is a distribution patch
# set (linux-6.12: what a distribution kernel carries, never mailed
# upstream); the others are git format-patch exports of a submission.

# series_patches DIR: the patches of DIR in the order they apply: the quilt
# series file's order for a distribution patch set, else by name (cover
# letter excluded).
series_patches() {
	local dir=$1 line
	if [ -f "$dir/series" ]; then
		while IFS= read -r line || [ -n "$line" ]; do
			line=${line%%#*}
			read -r line _ <<<"$line" # quilt: "NAME [-pN]"
			[ -n "$line" ] || continue
			[ -f "$dir/$line" ] || die "$dir/series names $line, which is missing"
			echo "$dir/$line"
		done <"$dir/series"
	else
		find "$dir" -maxdepth 1 -name '*.patch' ! -name '*0000-cover-letter.patch' | sort
	fi
}

# is_distro_set DIR: whether DIR is a distribution patch set.
is_distro_set() {
	[ -f "$1/series" ]
}

# The identity the checked-in patches carry: a placeholder, so that the
# repository's copies do not depend on who exported them last (see
# patches/README.md). A sender's copies carry the sender's identity.
PLACEHOLDER_NAME="Tosfwd Developer"
PLACEHOLDER_EMAIL=dev@tosfwd.invalid

# sender_identity: SENDER_NAME and SENDER_EMAIL from git config user.name
# and user.email (the repository's, else the user's); dies with a one-line
# reason when they are unset, not an address, or an .invalid one.
sender_identity() {
	SENDER_NAME=$(git -C "$REPO" config --get user.name || true)
	SENDER_EMAIL=$(git -C "$REPO" config --get user.email || true)
	[ -n "$SENDER_NAME" ] && [ -n "$SENDER_EMAIL" ] ||
		die "git config user.name and user.email must be set: patches go out as their sender (From:, Signed-off-by:)"
	case "$SENDER_EMAIL" in
	*[![:graph:]]* | *@*@* | @* | *@ | *"<"* | *">"*) die "git config user.email '$SENDER_EMAIL' is not a mail address" ;;
	*@*) ;;
	*) die "git config user.email '$SENDER_EMAIL' is not a mail address" ;;
	esac
	case "${SENDER_EMAIL,,}" in
	*.invalid) die "git config user.email '$SENDER_EMAIL' is an .invalid address: a patch is signed off by a known identity (DCO), set your own" ;;
	esac
}

# resign DIR: in DIR/*.patch, the placeholder author (From:, the cover
# letter's shortlog) and sign-off become the sender's (sender_identity);
# a patch by someone else keeps its author and gets the sender's
# Signed-off-by last, as git format-patch -s would add it.
resign() {
	python3 - "$1" "$PLACEHOLDER_NAME" "$PLACEHOLDER_EMAIL" "$SENDER_NAME" "$SENDER_EMAIL" <<'PY'
import os, re, sys
from email.header import Header
d, pname, pmail, sname, smail = sys.argv[1:]
placeholder = f"{pname} <{pmail}>"
sender = f"{sname} <{smail}>"
try:
    sname.encode("ascii")
    from_hdr = sender
except UnicodeEncodeError:
    from_hdr = f"{Header(sname, 'utf-8').encode()} <{smail}>"
for f in sorted(os.listdir(d)):
    if not f.endswith(".patch"):
        continue
    path = os.path.join(d, f)
    text = open(path, encoding="utf-8").read()
    head, sep, body = text.partition("\n\n")
    head = head.replace(f"From: {placeholder}", f"From: {from_hdr}")
    msg, dashes, rest = body.partition("\n---\n")
    msg = msg.replace(f"Signed-off-by: {placeholder}", f"Signed-off-by: {sender}")
    shortlog = re.compile(rf"^{re.escape(pname)} \((\d+)\):$", re.M)
    msg = shortlog.sub(lambda m: f"{sname} ({m.group(1)}):", msg)
    rest = shortlog.sub(lambda m: f"{sname} ({m.group(1)}):", rest)
    if "0000-cover-letter" not in f and f"Signed-off-by: {sender}" not in msg:
        lines = msg.split("\n")
        last = max((i for i, l in enumerate(lines) if l.startswith("Signed-off-by:")), default=None)
        if last is None:
            sys.exit(f"{path}: no Signed-off-by: line")
        lines.insert(last + 1, f"Signed-off-by: {sender}")
        msg = "\n".join(lines)
    text = head + sep + msg + dashes + rest
    if pmail in head or pmail in msg:
        sys.exit(f"{path}: still carries {pmail} after re-signing")
    open(path, "w", encoding="utf-8").write(text)
PY
}

# usage_error MSG: one line on standard error, exit status 2 (a usage error,
# as a script's usage line on a bad option).
usage_error() {
	printf '%s: error: %s (see --help)\n' "$(basename "$0")" "$*" >&2
	exit 2
}

# need_value OPTION ARGC: a usage error unless the option OPTION (at $1 of
# a parser with ARGC arguments left) has a value.
need_value() {
	[ "$2" -ge 2 ] || usage_error "option $1 needs a value"
}

# Option values are checked once parsed, before anything waits (the cache
# lock) or runs long, so a typo fails at once.

# check_kernel_version VERSION [OPTION]: a usage error unless VERSION is a
# supported kernel tree (KERNELS).
check_kernel_version() {
	local KV=$1
	kernel_package >/dev/null ||
		usage_error "${2:+$2: }kernel version '$1' is not supported (supported: $(kernel_versions | xargs))"
}

# check_series NAME: a usage error unless NAME is one of SERIES.
check_series() {
	case " ${SERIES[*]} " in
	*" $1 "*) ;;
	*) usage_error "-s: unknown series '$1' (known: ${SERIES[*]})" ;;
	esac
}

# check_count OPTION VALUE: a usage error unless VALUE is a positive decimal
# integer.
check_count() {
	case "$2" in
	"" | *[!0-9]* | 0*) usage_error "$1: '$2' is not a positive integer" ;;
	esac
}

# Suites added to a private apt configuration (never to the machine's).
EXTRA_SUITES=(trixie-backports)

# Upstream C KVM selftests built for and run by the bench.
C_SELFTESTS=(smccc_filter hypercalls psci_test)
# The TEE selftests (tools/testing/selftests/tee) the TEE series adds, built
# and run where the tree has them.
TEE_SELFTESTS=(tee_vm)
# KUnit suites built into the kernel (scripts/kernel-VERSION.config) that
# run at boot: each is a test of the bench, passed when the kernel's log
# has the suite's "ok" line (vmtest's kunit:SUITE).
KUNIT_SUITES=(optee_rpc_dispatch optee_smc_answers tee_shm_bounce)

# kunit_check SUITE: a test (a shell script) that passes when the kernel's
# log has the KUnit suite SUITE's "ok" line; it prints the suite's KTAP
# lines. A suite that did not run (not built in) fails.
kunit_check() {
	cat <<EOF
#!/bin/sh
# The KUnit suite $1, run at boot: its lines in the kernel's log.
dmesg | sed 's/^\[[ 0-9.]*\] //' >/tmp/kunit-$1.log
awk -v s="$1" '/# Subtest: / { on = (\$NF == s) } on { print } on && /^ *(not )?ok [0-9]+ / && \$0 ~ (" " s "( |\$)") { exit }' /tmp/kunit-$1.log
grep -Eq "^ *ok [0-9]+ $1( #.*)?\$" /tmp/kunit-$1.log && exit 0
echo "# no 'ok' line of the KUnit suite $1 in the kernel's log"
exit 1
EOF
}

# kunit_install ROOT: for a kernel built with KUnit ($BUILD/.config), a
# kunit:SUITE test per KUNIT_SUITES in the kselftest tree under ROOT
# (scripts/vmtest's initramfs).
kunit_install() {
	local t
	grep -qx 'CONFIG_KUNIT=y' "$BUILD/.config" || return 0
	mkdir -p "$1/kselftest/kunit"
	for t in "${KUNIT_SUITES[@]}"; do
		kunit_check "$t" >"$1/kselftest/kunit/$t"
		chmod 755 "$1/kselftest/kunit/$t"
		echo "kunit:$t" >>"$1/kselftest/kselftest-list.txt"
	done
}

# Developers' kernel trees (topic branches the series is exported from) and
# the series checker's scratch trees.
KWORK=${TOSFWD_KWORK:-$CACHE/kwork}

CROSS=aarch64-linux-gnu-
RUST_TARGET=aarch64-unknown-linux-gnu
# The aarch64 cargo target directory, one per checkout: cargo copies final
# binaries to one place per target directory, so two checkouts sharing one
# would overwrite each other's binaries without rebuilding them.
CROSS_TARGET_DIR=$CACHE/target-aarch64/$(printf '%s' "$REPO" | sha256sum | cut -c1-12)
CROSS_BIN_DIR=$CROSS_TARGET_DIR/$RUST_TARGET/release

T0=${T0:-$(date +%s)}
export T0

# log MSG: one progress line with the elapsed time of the whole run.
log() {
	printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2
}

# with_progress LABEL LOGFILE CMD...: run CMD with its output in LOGFILE,
# printing "LABEL: still running, Ns" every 30 s so long steps show they are
# alive.
with_progress() {
	local label=$1 logfile=$2 s pid rc=0 waited=0
	shift 2
	s=$(date +%s)
	"$@" </dev/null >"$logfile" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		waited=$((waited + 1))
		if [ $((waited % 30)) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
			log "$label: still running, $(($(date +%s) - s))s"
		fi
	done
	wait "$pid" || rc=$?
	return "$rc"
}

# cache_lock: one user of the cache's kernel trees and builds at a time
# (another checkout's run would switch the tree to its own series mid-build).
# Held until the calling script exits; the scripts it runs inherit it.
cache_lock() {
	[ -z "${TOSFWD_CACHE_LOCKED:-}" ] || return 0
	mkdir -p "$CACHE"
	exec 9>"$CACHE/lock"
	if ! flock -n 9; then
		log "waiting for another run that uses $CACHE"
		flock 9
	fi
	export TOSFWD_CACHE_LOCKED=1
}

die() {
	printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2
	exit 1
}

# kernel_package VERSION: the Debian source package of a supported tree.
kernel_package() {
	local line
	for line in "${KERNELS[@]}"; do
		set -- $line
		if [ "$1" = "$KV" ]; then
			echo "$2"
			return 0
		fi
	done
	return 1
}

kernel_versions() {
	local line
	for line in "${KERNELS[@]}"; do
		echo "${line%% *}"
	done
}

# Per-tree paths, from $KV.
kernel_paths() {
	SRC=$CACHE/src/linux-$KV
	BUILD=$CACHE/build/linux-$KV
	HDR=$BUILD/hdr
	KSFT=$BUILD/kselftest
}

# debian_uri: the machine's own Debian mirror, read from its apt sources.
debian_uri() {
	local uri
	uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
	fi
	[ -n "$uri" ] || die "no Debian mirror found in the machine's apt sources"
	echo "$uri"
}

# private_apt [PROFILE]: an apt configuration under $CACHE/apt (or
# $CACHE/apt-PROFILE); prints the options to pass to apt-get. Only the
# machine's configuration names hosts.
#   default: the machine's own sources plus EXTRA_SUITES on its mirror;
#   trixie:  Debian trixie alone (binaries and sources) on the machine's
#            mirror, for the secure world's packages and their user space.
# apt checks the suites' signatures with the machine's Debian archive keyring.
private_apt() {
	local profile=${1:-default} dir uri
	if [ "$profile" = default ]; then dir=$CACHE/apt; else dir=$CACHE/apt-$profile; fi
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d"
	uri=$(debian_uri)
	rm -f "$dir/sources.list.d/"*
	case "$profile" in
	default)
		cp /etc/apt/sources.list.d/*.sources "$dir/sources.list.d/" 2>/dev/null || true
		[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$dir/sources.list" || : >"$dir/sources.list"
		cat >"$dir/sources.list.d/tosfwd-extra.sources" <<EOF
Types: deb
URIs: $uri
Suites: ${EXTRA_SUITES[*]}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		;;
	trixie)
		: >"$dir/sources.list"
		cat >"$dir/sources.list.d/tosfwd-trixie.sources" <<EOF
Types: deb deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		;;
	*) die "private_apt: unknown profile '$profile'" ;;
	esac
	printf '%s\n' \
		-o "Dir::Etc::SourceList=$dir/sources.list" \
		-o "Dir::Etc::SourceParts=$dir/sources.list.d" \
		-o "Dir::State::Lists=$dir/lists" \
		-o "Dir::Cache=$dir/cache" \
		-o "APT::Get::List-Cleanup=0" \
		-o "APT::Sandbox::User=root"
}

# apt_opts [PROFILE]: fills the array APT_OPTS with a private configuration's
# options, updating its package lists at most once a day.
apt_opts() {
	local profile=${1:-default} stamp
	mapfile -t APT_OPTS < <(private_apt "$profile")
	if [ "$profile" = default ]; then stamp=$CACHE/apt/updated; else stamp=$CACHE/apt-$profile/updated; fi
	if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
		log "apt: updating the private package lists ($profile)"
		apt-get "${APT_OPTS[@]}" update -qq >/dev/null ||
			die "apt-get update of the private configuration '$profile' failed"
		touch "$stamp"
	fi
}

# apt_download PKG DEST [PROFILE]: download one .deb into DEST (a directory)
# through a private configuration (default: the machine's sources plus
# EXTRA_SUITES); apt checks its hash against the signed package index.
apt_download() {
	local pkg=$1 dest=$2 profile=${3:-default}
	apt_opts "$profile"
	mkdir -p "$dest"
	(cd "$dest" && apt-get "${APT_OPTS[@]}" download -qq "$pkg" >/dev/null) ||
		die "apt-get download $pkg ($profile) failed"
}
