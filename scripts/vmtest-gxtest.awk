# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# The guests' xtest runs of one boot (xtest in a KVM guest under
# tools/vmm --tee host), compared case by case with the host's run in the
# same boot. Reads the serial log: the host's @@X lines (see
# scripts/xtest-filter.awk), the @@GXTESTBEGIN/@@GXTESTEND frame of each
# guest run written by /optee/run, the guest's own @@GX lines and the
# VMM's closing count of forwarded calls and cost lines (one per session
# of the benchmark, in its order: tools/optee-mediator/src/cost.rs).
# Variables: logf (the log's path), subset (space-separated xtest ids of a
# subset run), differ (file of "id reason" lines: cases whose guest result
# differs from the host's by design), counts (file to append
# "pass fail skip" to), virt (1 on the NS-virtualization OP-TEE).
#
# A guest run passes when the VMM exits 0, the guest's OP-TEE driver
# initialized, (virt) the VMM or the service gave it an OP-TEE VM of its
# own, xtest finished in the guest, every case of its plan ran, and
# every case that passed on the host passed in the guest or is listed in
# `differ`. A run whose supplicant requests the guest's own tee-supplicant
# served (supplicant=guest) may differ in no case, must have started it,
# and its TAs' secure storage must be in the guest's file system.

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function after(s, marker) { return trim(substr(s, index(s, marker) + length(marker))) }
function field(s, key,    f, n, i) {
	n = split(s, f, " ")
	for (i = 1; i <= n; i++) if (index(f[i], key "=") == 1) return substr(f[i], length(key) + 2)
	return ""
}
function secs(cs) { return sprintf("%d.%02ds", cs / 100, cs % 100) }
function result(st, name, detail) {
	printf "  %-5s %s%s\n", st, name, detail
	if (st == "PASS") np++
	else if (st == "SKIP") ns++
	else nf++
}
# One line of tools/tee-client --xtest-tas (KTAP, its benchmark comments,
# "rc=N") run by `who` (host, or a guest run).
function tc(who, l,    name) {
	tcseen[who] = 1
	if (l ~ /^rc=/) { tcrc[who] = substr(l, 4); return }
	if (l ~ /^# bench: /) {
		split(after(l, "# bench: "), f, " ")
		bench[who, f[1]] = f[2]
		if (!(f[1] in benchseen)) { benchseen[f[1]] = 1; benchorder[++nbench] = f[1] }
		if (who != "host") benchat[who, f[1]] = ++nb[who]
		return
	}
	# A skip would hide a case the bench has everything for (OP-TEE, its
	# PTAs, the kernel client's module): counted as a failure.
	if (l ~ /^ok [0-9]+ .*# SKIP/) { tcfail[who] = tcfail[who] " " after(l, "ok ") ; return }
	if (l ~ /^ok [0-9]+ /) { tcok[who]++; return }
	if (l ~ /^not ok [0-9]+ /) { tcfail[who] = tcfail[who] " " after(l, "not ok "); return }
}
function tc_result(who, name,    why) {
	if (!(who in tcseen)) why = "did not run"
	else if (tcfail[who] != "") why = "failed:" tcfail[who]
	else if (tcrc[who] != "0") why = "exit " tcrc[who]
	else if (tcok[who] == 0) why = "no case passed"
	result(why == "" ? "PASS" : "FAIL", name, why == "" ? ": " tcok[who] " cases ok" : ": " why)
}
function us(ns) { return sprintf("%.1f us", ns / 1000) }

# A top-level case's name in a summary line ("regression_1001 OK"), or "".
function summary_case(l,    f) {
	if (l !~ /^[a-z0-9]+_[0-9][a-z0-9_]* /) return ""
	split(l, f, " ")
	return f[1]
}

/@@XTESTBEGIN / { hplan = after($0, "@@XTESTBEGIN "); next }
/@@TC / { tc("host", after($0, "@@TC ")); next }
/@@XRES / {
	l = after($0, "@@XRES ")
	c = summary_case(l)
	if (c != "") { split(l, f, " "); hverdict[c] = f[2]; horder[++nh] = c }
	next
}
/@@GXTESTBEGIN / {
	l = after($0, "@@GXTESTBEGIN ")
	cur = l; sub(/ .*/, "", cur)
	runs[++nruns] = cur
	gplan[cur] = field(l, "plan")
	gvcpus[cur] = field(l, "vcpus")
	gtee[cur] = field(l, "tee")
	gsupp[cur] = field(l, "supplicant")
	last = cur
	next
}
# The TEE service's log after a run through it (tee=remote).
/@@GXTEED / {
	l = after($0, "@@GXTEED ")
	teed[last] = teed[last] "          service: " l "\n"
	if (match(l, /OP-TEE VM [0-9]+ for the service's VM [0-9]+/)) gpart[last] = substr(l, RSTART, RLENGTH)
	if (l ~ /shares its memory/) gshared[last] = 1
	next
}
cur == "" { next }
# The VMM made the guest's context an OP-TEE VM of its own (NS-virtualization).
/tosfwd-vmm: info: .*OP-TEE VM [0-9]+, a partition of its own/ {
	if (match($0, /OP-TEE VM [0-9]+/)) gpart[cur] = substr($0, RSTART, RLENGTH) " of its own"
	next
}
/@@GXGUEST / { gguest[cur] = after($0, "@@GXGUEST "); next }
/@@GXSUPP / { gsuppst[cur] = after($0, "@@GXSUPP "); next }
/@@GXSTORAGE / { gstore[cur] = field(after($0, "@@GXSTORAGE "), "files"); next }
# The VMM's warning that a relayed request waits for the guest.
/tosfwd-vmm: warning: supplicant request [0-9]+ relayed to the guest has waited/ { gslow[cur]++; next }
/@@GXTC / { tc(cur, after($0, "@@GXTC ")); next }
/@@GXDMESG / {
	l = after($0, "@@GXDMESG ")
	if (l ~ /optee: revision /) grev[cur] = after(l, "optee: revision ")
	if (l ~ /optee: initialized driver/) ginit[cur] = 1
	next
}
/@@GXERR / {
	l = after($0, "@@GXERR ")
	c = l; sub(/ .*/, "", c)
	gerr[cur, c] = after(l, c " ")
	next
}
/@@GXRES / {
	l = after($0, "@@GXRES ")
	c = summary_case(l)
	if (c != "") { split(l, f, " "); gverdict[cur, c] = f[2]; gran[cur, c] = 1 }
	if (l ~ /subtests of which/) gsub_[cur] = l
	if (l ~ /test cases of which/) gcases[cur] = l
	next
}
/@@GXEND / {
	l = after($0, "@@GXEND ")
	gended[cur] = 1
	grc[cur] = field(l, "rc")
	gcs[cur] = field(l, "cs")
	next
}
# An answer of the VMM's supplicant that the host driver refused: the
# request's wait had ended (the driver's bound on a VM's unanswered request,
# vm_supp_timeout_ms), so the partition stalled that long.
/tosfwd-vmm: warning: supplicant: answering a request: TEE_IOC_SUPPL_SEND failed/ {
	late[cur]++
	next
}
/tosfwd-vmm: [0-9]+ forwarded calls/ {
	l = after($0, "tosfwd-vmm: ")
	split(l, f, " ")
	calls[cur] = f[1]
	if (match(l, /CALL_RETURN_FROM_RPC x[0-9]+/)) rfr[cur] = substr(l, RSTART + 22, RLENGTH - 22)
	if (match(l, /CALL_WITH_ARG x[0-9]+/)) cwa[cur] = substr(l, RSTART + 15, RLENGTH - 15)
	next
}
# The benchmark's sessions close first, one per kind of call, so the
# run's first cost lines are theirs, in the benchmark's order.
/tosfwd-vmm: cost: TA / {
	l = after($0, "session ")
	cost[cur, ++ncost[cur]] = after(l, "per call: ")
	next
}
/@@GXTESTEND / {
	l = after($0, "@@GXTESTEND ")
	vended[cur] = 1
	vrc[cur] = field(l, "rc")
	vcs[cur] = field(l, "cs")
	cur = ""
	next
}

END {
	if (nruns == 0) exit
	while ((getline l < differ) > 0) {
		if (l ~ /^#/ || trim(l) == "") continue
		id = l; sub(/ .*/, "", id)
		listed["regression_" id] = after(l, id " ")
	}
	tc_result("host", "tee_client_xtest_tas_host")
	nsub = split(subset, want, " ")
	for (i = 1; i <= nsub; i++) insubset["regression_" want[i]] = 1
	for (r = 1; r <= nruns; r++) {
		run = runs[r]
		# The cases of the plan, as the host ran them.
		n = 0
		for (i = 1; i <= nh; i++) {
			c = horder[i]
			if (gplan[run] == "subset" && !(c in insubset)) continue
			plancase[++n] = c
		}
		missing = ""; unexplained = 0; nlisted = 0; nok = 0; hostfail = 0
		for (i = 1; i <= n; i++) {
			c = plancase[i]
			if (!((run, c) in gran)) { missing = missing " " c; continue }
			if (gverdict[run, c] == "OK") nok++
			if (hverdict[c] != "OK") hostfail++
			else if (gverdict[run, c] != "OK") {
				if ((c in listed) && gsupp[run] != "guest") nlisted++
				else unexplained++
			}
		}
		t = (run in vcs) ? " (" secs(vcs[run]) ")" : ""
		why = ""
		if (!(run in vended)) why = "the guest run did not finish (see " logf ")"
		else if (vrc[run] == 124 || vrc[run] == 143) why = "timed out"
		else if (vrc[run] != 0) why = "tosfwd-vmm exited " vrc[run]
		else if (!(run in ginit)) why = "the guest's OP-TEE driver did not initialize"
		else if (virt && !(run in gpart)) why = "the guest had no OP-TEE partition of its own (NS-virtualization OP-TEE)"
		else if (gtee[run] == "remote" && !(run in gshared)) why = "the service did not map the guest's memory (tosfwd-vmm --tee-share-memory)"
		else if (gsupp[run] == "guest" && gsuppst[run] != "started") why = "the guest's tee-supplicant did not start (" (run in gsuppst ? gsuppst[run] : "no word of it") ")"
		else if (!(run in gended)) why = "xtest did not finish in the guest"
		else if (gplan[run] == "full" && hplan != "full") why = "the host did not run the whole suite to compare with"
		else if (n == 0) why = "the host has no results to compare with"
		else if (missing != "") why = "cases that did not run in the guest:" missing
		else if (unexplained > 0) why = unexplained " case(s) pass on the host and fail in the guest"
		else if (late[run] > 0) why = late[run] " supplicant answer(s) came after the host driver gave up waiting for them (a stalled partition)"
		else if (gsupp[run] == "guest" && gstore[run] + 0 == 0) why = "the guest's secure storage is empty: its TAs' storage did not land in the guest's file system"
		result(why == "" ? "PASS" : "FAIL", run, t (why != "" ? ": " why : \
			": " n " cases, " nok " OK in the guest" \
			(nlisted > 0 ? ", " nlisted " differ from the host as listed" : ", all as on the host")))
		if (run in gpart) printf "          in %s\n", gpart[run]
		if (gsupp[run] == "guest")
			printf "          supplicant: the guest's own tee-supplicant (tosfwd-vmm --tee-supplicant guest): %s files in the guest's secure storage%s\n", \
				(run in gstore ? gstore[run] : "?"), (gslow[run] > 0 ? "; " gslow[run] " request(s) waited 10 s or more for the guest" : "")
		printf "          guest: %s; optee: revision %s; xtest exit %s in %s; %s; %s\n", \
			(run in gguest ? gguest[run] : "?"), (run in grev ? grev[run] : "?"), \
			(run in grc ? grc[run] : "?"), (run in gcs ? secs(gcs[run]) : "?"), \
			(run in gsub_ ? gsub_[run] : "no subtest count"), (run in gcases ? gcases[run] : "no case count")
		if (gtee[run] == "remote")
			printf "          through the TEE service (tosfwd-teed --tee host, tosfwd-vmm --tee remote:)\n%s", teed[run]
		if (gtee[run] == "pvm")
			printf "          a protected guest (tosfwd-vmm --protected --tee host): its driver shares what it hands to OP-TEE\n"
		if (run in calls)
			printf "          the VMM forwarded %d calls: %d CALL_WITH_ARG, %d RETURN_FROM_RPC (%.1f per call)\n", \
				calls[run], cwa[run], rfr[run], (cwa[run] > 0 ? rfr[run] / cwa[run] : 0)
		if (late[run] > 0)
			printf "          %d answers of the VMM's supplicant refused by the host driver (TEE_IOC_SUPPL_SEND: EBADF): their requests had waited past the driver's bound\n", late[run]
		for (i = 1; i <= n; i++) {
			c = plancase[i]
			if (!((run, c) in gran) || hverdict[c] != "OK" || gverdict[run, c] == "OK") continue
			if ((c in listed) && gsupp[run] != "guest") printf "          differs as listed: %s %s: %s\n", c, gverdict[run, c], listed[c]
			else {
				printf "          FAIL   %s %s in the guest, OK on the host\n", c, gverdict[run, c]
				if ((run, c) in gerr) printf "                 %s\n", gerr[run, c]
			}
		}
		for (i = 1; i <= n; i++) {
			c = plancase[i]
			if (hverdict[c] != "OK" && ((run, c) in gran))
				printf "          failed on the host too: %s (guest: %s)\n", c, gverdict[run, c]
			if ((c in listed) && gverdict[run, c] == "OK" && gsupp[run] != "guest")
				printf "          listed as differing but OK in the guest: %s\n", c
		}
		tc_result(run, "tee_client_xtest_tas_" substr(run, 13))
		for (b = 1; b <= nbench; b++) {
			k = benchorder[b]
			if (!(("host", k) in bench) || !((run, k) in bench)) continue
			printf "          bench %s: host %s, guest %s per call, guest/host %.2f\n", k, \
				us(bench["host", k]), us(bench[run, k]), \
				(bench["host", k] > 0 ? bench[run, k] / bench["host", k] : 0)
			if ((run, benchat[run, k]) in cost)
				printf "            cost per call: %s\n", cost[run, benchat[run, k]]
		}
	}
	printf "%d %d %d\n", np, nf, ns >> counts
}
