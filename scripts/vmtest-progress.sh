# SPDX-License-Identifier: Apache-2.0 OR MIT
# shellcheck shell=bash
#
# What scripts/vmtest says of where it is: "boot K/N KV/MODE" on each boot,
# one result line when a boot ends, an estimate of what is left
# (vmtest-estimate.awk), and the summary, failures first
# (vmtest-failures.awk). Sourced by scripts/vmtest after lib.sh; uses its
# kernels, modes, setup, PHASES and RUN. Tested by scripts/tests/vmtest-summary.

# progress_start: the run's boots and phases, and the settings that change
# how long a boot takes (an estimate compares runs with the same ones);
# then the estimate of the whole run.
progress_start() {
	local kv m e2e=1 optee=1
	PROGRESS_BOOTS=()
	PROGRESS_PHASES=()
	[ "$setup" -eq 0 ] || PROGRESS_PHASES+=(setup)
	PROGRESS_PHASES+=(cross-build busybox secure-world)
	for kv in "${kernels[@]}"; do
		PROGRESS_PHASES+=("build-$kv" "initramfs-$kv")
		for m in "${modes[@]}"; do
			PROGRESS_BOOTS+=("$kv/$m")
			PROGRESS_PHASES+=("boot-$kv/$m")
		done
	done
	[ "${VMTEST_E2E:-1}" != 0 ] || e2e=0
	[ "${VMTEST_OPTEE:-1}" != 0 ] || optee=0
	PROGRESS_SETTINGS="VMTEST_XTEST=${VMTEST_XTEST:-default} VMTEST_E2E=$e2e"
	PROGRESS_SETTINGS+=" VMTEST_GXTEST=${VMTEST_GXTEST:-1} VMTEST_OPTEE=$optee"
	PROGRESS_K=0
	touch "$RUN/counts" "$RUN/summary"
	progress_estimate
}

# progress_estimate: logs the estimate of the phases not run yet, from the
# earlier runs in the log directory (newest first); nothing once none is left.
progress_estimate() {
	local done=" ${PHASES[*]%% *} " p left=() runs=() d
	for p in "${PROGRESS_PHASES[@]}"; do
		[[ "$done" == *" $p "* ]] || left+=("$p")
	done
	[ "${#left[@]}" -gt 0 ] || return 0
	while read -r d; do
		[[ "$d" =~ ^[0-9]{8}-[0-9]{6}$ ]] && [[ "$d" < "${RUN##*/}" ]] && runs+=("${RUN%/*}/$d")
	done < <(ls -1 "${RUN%/*}" | sort -r)
	log "$(awk -v boots="${PROGRESS_BOOTS[*]}" -v left="${left[*]}" -v settings="$PROGRESS_SETTINGS" \
		-f "$REPO/scripts/vmtest-estimate.awk" "${runs[@]}")"
}

# progress_boot_begin KV/MODE: BOOT_LABEL ("boot K/N KV/MODE", which
# boot() and run_qemu's lines carry) and where this boot's counts and block
# start.
progress_boot_begin() {
	PROGRESS_K=$((PROGRESS_K + 1))
	BOOT_LABEL="boot $PROGRESS_K/${#PROGRESS_BOOTS[@]} $1"
	PROGRESS_START=$(date +%s)
	PROGRESS_COUNTS=$(wc -l <"$RUN/counts")
	PROGRESS_BLOCK=$(wc -l <"$RUN/summary")
}

# progress_boot_end: the boot's result line (after its report), then the
# estimate of what is left.
progress_boot_end() {
	local p f s failed secs=$(($(date +%s) - PROGRESS_START))
	read -r p f s < <(tail -n +$((PROGRESS_COUNTS + 1)) "$RUN/counts" |
		awk '{ p += $1; f += $2; s += $3 } END { print p + 0, f + 0, s + 0 }')
	failed=$(tail -n +$((PROGRESS_BLOCK + 1)) "$RUN/summary" |
		awk '/^  FAIL  / { n = $2; sub(/:$/, "", n); if (++c <= 5) l = l (c > 1 ? ", " : "") n }
			END { printf "%s%s", l, (c > 5 ? " and " c - 5 " more" : "") }')
	log "$BOOT_LABEL: $p passed, $f failed${failed:+ ($failed)}, $s skipped in $((secs / 60)).$((secs % 60 / 6)) min"
	progress_estimate
}

# summary_final: rewrites $RUN/summary as the run's summary (the failures,
# each with the log line that shows it; the boots' blocks; the stalled
# boots; the settings and phase times a later run's estimate reads; the
# counts) and prints it. Fails when anything failed.
summary_final() {
	local p f s blocks=$RUN/summary.blocks
	mv "$RUN/summary" "$blocks"
	read -r p f s < <(awk '{ p += $1; f += $2; s += $3 } END { print p + 0, f + 0, s + 0 }' "$RUN/counts")
	{
		awk -v run="$RUN" -f "$REPO/scripts/vmtest-failures.awk" "$blocks"
		echo
		cat "$blocks"
		if [ -f "$RUN/retried" ]; then
			echo "boots whose host kernel stalled, booted once more (their results are the second boot's):"
			cat "$RUN/retried"
		fi
		echo "bench settings: $PROGRESS_SETTINGS"
		echo "phases (wall): ${PHASES[*]}"
		echo "total wall: $(($(date +%s) - T0))s"
		echo "vmtest: $p passed, $f failed, $s skipped"
	} >"$RUN/summary"
	rm -f "$blocks"
	echo
	echo "==== vmtest summary ($RUN) ===="
	cat "$RUN/summary"
	[ "$f" -eq 0 ]
}
