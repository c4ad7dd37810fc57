# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# The hostile host's part of a boot's summary block (scripts/vmtest: the
# protected boot of a kernel with a guest series). tosfwd-vmm --hostile-host
# (a test tool: the VMM lies to its guest, tools/vmm/src/hostile/mod.rs) forges
# OP-TEE's answers:
#   - e2e_optee_pvm_hostile, a protected guest with the series, meets every
#     forgery in one boot: one result, hostile_host_guest_kernel_intact,
#     PASS when the VMM made every forgery and the guest's console (the
#     VMM's standard output) shows no oops, BUG, WARN or slab error (the
#     client's cases, each forged call ending with an error, are
#     vmtest-report.awk's e2e result of that run);
#   - the same kernel without the series (the noguest Image), one boot per
#     forgery (@@HOSTILEBEGIN/END): what happened to it, printed as
#     evidence that the hardening matters, never counted.
# Variables: logf (the log's path), counts (file to append "pass fail skip" to).

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function after(s, marker) { return trim(substr(s, index(s, marker) + length(marker))) }
# The first line of a kernel error report: what it is, in a word.
function kind(l) {
	if (l ~ /Unable to handle kernel|Internal error: /) return "guest oops"
	if (l ~ /BUG [^ ]+ \(|Redzone|Poison overwritten|padding overwritten|Freepointer/) return "slab error"
	if (l ~ /WARNING: /) return "WARN"
	if (l ~ /Kernel panic/) return "panic"
	return "BUG"
}

BEGIN { broken = "Unable to handle kernel|Internal error: |kernel BUG at|BUG: |BUG [^ ]+ \\(|WARNING: |Redzone|Poison overwritten|padding overwritten|Freepointer|Kernel panic|refcount_t: " }

/@@E2EBEGIN e2e_optee_pvm_hostile$/ { hard = 1; seen = 1; next }
/@@E2EEND e2e_optee_pvm_hostile / { hard = 0; next }
/@@HOSTILEBEGIN / { f = after($0, "@@HOSTILEBEGIN "); order[++nf] = f; next }
/@@HOSTILEEND / {
	split(after($0, "@@HOSTILEEND "), w, " ")
	rc[w[1]] = after(w[2], "rc=")
	f = ""
	next
}
hard && /^tosfwd-vmm: hostile-host: call [0-9]+: / { forged[++nforged] = after($0, "tosfwd-vmm: hostile-host: "); next }
hard && /^tosfwd-vmm: hostile-host: [0-9]+ of [0-9]+ forgeries made/ {
	split(after($0, "tosfwd-vmm: hostile-host: "), w, " ")
	made = w[1]; want = w[3]
	next
}
hard && $0 ~ broken { if (hardbroken == "") hardbroken = trim($0); next }
f != "" && $0 ~ broken { if (!(f in what)) what[f] = trim($0); next }
f != "" && /^(not )?ok [0-9]+ / { client[f] = ($0 ~ /^not ok/) ? "not ok" : "ok"; next }
f != "" && /^# hostile-host: call [0-9]+: forgery [^:]+: / { detail[f] = after($0, ": forgery " f ": "); next }

END {
	if (!seen && nf == 0) exit
	if (seen) {
		why = ""
		if (made == "") why = "the VMM did not say how many forgeries it made (see " logf ")"
		else if (made != want) why = "the VMM made " made " of " want " forgeries"
		else if (hardbroken != "") why = "the guest kernel reported: " hardbroken
		printf "  %-5s %s%s\n", (why == "" ? "PASS" : "FAIL"), "hostile_host_guest_kernel_intact", \
			(why != "" ? ": " why : " (" made " forgeries, no oops/BUG/WARN/slab error in the guest's console)")
		for (i = 1; i <= nforged; i++) printf "          vmm: %s\n", forged[i]
		printf "%d %d %d\n", (why == "" ? 1 : 0), (why == "" ? 0 : 1), 0 >> counts
	}
	if (nf > 0) printf "  evidence (not counted): the guest kernel without the series (noguest), one boot per forgery:\n"
	for (i = 1; i <= nf; i++) {
		f = order[i]
		if (f in what) r = kind(what[f]) " (" what[f] ")"
		else if (rc[f] == 124 || rc[f] == 143 || rc[f] == 137) r = "hang (the run timed out, exit " rc[f] ")"
		else if (client[f] == "ok") r = "survived: the call ended with an error" (detail[f] != "" ? " (" detail[f] ")" : "")
		else if (client[f] == "not ok") r = "the forged call succeeded"
		else r = "no client result (tosfwd-vmm exit " rc[f] ")"
		printf "          noguest: forgery %s -> %s\n", f, r
	}
}
