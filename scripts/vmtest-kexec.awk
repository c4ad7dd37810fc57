# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# The kexec part of a boot's summary block (boots in KEXEC_BOOTS of
# scripts/vmtest): reads the @@KX markers of scripts/vmtest-kexec.sh in the
# serial log and prints one result, optee_vms_across_kexec. Variables: logf
# (the log's path), counts (file to append "pass fail skip" to).

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function after(s, marker) { return trim(substr(s, index(s, marker) + length(marker))) }

/@@KXBEGIN before/ { before = 1; next }
/@@KXBEGIN after/ { afterseen = 1; next }
/@@KXVMM .*OP-TEE VM [0-9]+, a partition of its own/ {
	if (match($0, /OP-TEE VM [0-9]+/)) vm = substr($0, RSTART, RLENGTH)
	next
}
/@@KXEXEC / { packed = after($0, "@@KXEXEC "); next }
/@@KXEND before / { beforewhy = after($0, "@@KXEND before rc=1 "); next }
/@@KXDMESG / {
	l = after($0, "@@KXDMESG ")
	if (l ~ /optee: initialized driver/) initialized = 1
	if (l ~ /optee: .*(failed|error)/ || l ~ /tee-supplicant failed/) drverr = l
	next
}
# tee_vm's own KTAP lines.
/@@KXST ok [0-9]+ / { stok++; next }
/@@KXST not ok [0-9]+ / { stfail++; stfailed = stfailed " " after($0, "@@KXST not ok "); next }
/@@KXST # Totals: / { sttotals = after($0, "@@KXST # "); next }
/@@KXPART / { npart++; pstep[npart] = after($0, "@@KXPART "); next }
/@@KXPARTEND / { if ($0 !~ /rc=0/) pfailed = pfailed " " pstep[npart]; next }
/@@KXEND after / {
	ended = 1
	l = after($0, "@@KXEND after ")
	if (match(l, /cs=[0-9]+/)) cs = substr(l, RSTART + 3, RLENGTH - 3)
	if (l ~ /^rc=1 / && l !~ /cs=/) afterwhy = after(l, "rc=1 ")
	next
}

END {
	why = ""
	if (!before) why = "the kexec stage did not start (see " logf ")"
	else if (beforewhy != "") why = beforewhy
	else if (!afterseen) why = "the kexec'd kernel did not reach its init (see " logf ")"
	else if (afterwhy != "") why = afterwhy
	else if (!initialized) why = "the OP-TEE driver did not initialize after the kexec" (drverr != "" ? ": " drverr : "")
	else if (!ended) why = "the checks after the kexec did not finish"
	else if (stok == 0) why = "tee_vm did not run after the kexec"
	else if (stfail > 0) why = "tee_vm after the kexec:" stfailed
	else if (npart != 3) why = npart " of 3 partition runs ran after the kexec"
	else if (pfailed != "") why = "partition runs failed after the kexec:" pfailed
	t = (cs != "") ? sprintf(" (%d.%02ds after the kexec)", cs / 100, cs % 100) : ""
	printf "  %-5s %s%s%s\n", (why == "" ? "PASS" : "FAIL"), "optee_vms_across_kexec", t, (why != "" ? ": " why : "")
	if (vm != "" || packed != "")
		printf "          before: a guest in %s, live at the kexec; %s\n", (vm != "" ? vm : "an OP-TEE VM"), packed
	if (afterseen)
		printf "          after: tee_vm %s; partition runs: %d (host expects its own, a new guest none, the host again)\n", \
			(sttotals != "" ? sttotals : stok " ok, " stfail + 0 " not ok"), npart
	printf "%d %d %d\n", (why == "" ? 1 : 0), (why == "" ? 0 : 1), 0 >> counts
}
