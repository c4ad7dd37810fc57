# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# The real OP-TEE part of one boot's summary block: reads the serial log
# (markers written by the /optee/run script of scripts/vmtest and by
# scripts/xtest-filter.awk inside the emulated host) and prints the results.
# Variables: logf (the log's path), secure (the secure world's log), fixture
# (real OP-TEE's recorded fast-call answers, tools/optee-mediator/tests/data),
# subset (space-separated xtest ids of a subset run), excluded (file of
# "id reason" lines: cases left out of every run on purpose), counts (file
# to append "pass fail skip" to), virt (1 when the boot has the
# NS-virtualization OP-TEE), parts (how many partition runs to expect).

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function after(s, marker) { return trim(substr(s, index(s, marker) + length(marker))) }
function result(st, name, detail) {
	printf "  %-5s %s%s\n", st, name, detail
	if (st == "PASS") np++
	else if (st == "SKIP") ns++
	else nf++
}

/@@OPTEE plan / { plan = after($0, "@@OPTEE plan "); sub(/ .*/, "", plan); seen = 1; next }
# The partition runs (NS-virtualization): who, steps, exit status.
/@@PARTBEGIN / { npart++; split(after($0, "@@PARTBEGIN "), f, " "); pwho[npart] = f[1]; psteps[npart] = f[2]; next }
/@@PARTEND / { p = after($0, "@@PARTEND "); sub(/.* rc=/, "", p); prc[npart] = p; next }
/ok partition: |FAIL partition: / {
	l = $0; sub(/^.*(ok|FAIL) partition: /, "", l)
	if ($0 ~ /ok partition: /) pok[npart]++
	else { pfail[npart]++; pwhy[npart] = pwhy[npart] "; " l }
	next
}
# A guest's own verdict: the VMM's exit status says only how the guest stopped.
/@@GXPART rc=/ { p = $0; sub(/.*@@GXPART rc=/, "", p); pgrc[npart] = p + 0; pgseen[npart] = 1; next }
/@@OPTEE dmesg / {
	l = after($0, "@@OPTEE dmesg ")
	if (l ~ /optee: revision /) revision = after(l, "optee: revision ")
	if (l ~ /optee: initialized driver/) initialized = 1
	if (l ~ /optee: (probe of|.*failed|.*error)/) drverr = l
	next
}
/@@OPTEE device / { dev[after($0, "@@OPTEE device ")] = 1; next }
/@@OPTEE loopback / { loopback = after($0, "@@OPTEE loopback "); next }
/@@OPTEE clock / { clock = after($0, "@@OPTEE clock "); next }
/@@OPTEE supplicant / { supplicant = after($0, "@@OPTEE supplicant "); next }
/@@OPTEE probe / { probe = after($0, "@@OPTEE probe "); next }
/@@PROBE / { probed[++nprobe] = after($0, "@@PROBE "); next }
/@@XTESTBEGIN / { xplan = after($0, "@@XTESTBEGIN "); next }
/@@XCASE / {
	split(after($0, "@@XCASE "), f, " ")
	started[f[1]] = 1
	ncases++
	next
}
/@@XERR / {
	l = after($0, "@@XERR ")
	c = l; sub(/ .*/, "", c)
	firsterr[c] = after(l, c " ")
	next
}
/@@XSKIP / {
	l = after($0, "@@XSKIP ")
	c = l; sub(/ .*/, "", c)
	skipline[c] = after(l, c " ")
	next
}
/@@XRES / {
	l = after($0, "@@XRES ")
	if (l ~ /^[a-z0-9]+_[0-9][a-z0-9_]* /) {
		split(l, f, " ")
		verdict[f[1]] = f[2]
		order[++nres] = f[1]
		if (f[2] != "OK") where[f[1]] = after(l, f[1] " " f[2])
	}
	if (l ~ /subtests of which/) subtests = l
	if (l ~ /test cases of which/) casesline = l
	if (l ~ /test cases were skipped/) skippedline = l
	next
}
/@@XTESTEND / {
	split(after($0, "@@XTESTEND "), f, " ")
	xrc = f[1]; sub(/^rc=/, "", xrc)
	xcs = f[2]; sub(/^cs=/, "", xcs)
	xended = 1
	next
}

END {
	if (!seen) {
		result("FAIL", "optee_host_driver_probed", ": the OP-TEE checks never ran (see " logf ")")
		printf "%d %d %d\n", np, nf, ns >> counts
		exit
	}
	printf "  optee: revision %s | driver %s | %s%s| supplicant %s | loopback %s | clock %s\n", \
		(revision != "" ? revision : "?"), (initialized ? "initialized" : "NOT initialized"), \
		("/dev/tee0" in dev ? "/dev/tee0 " : ""), ("/dev/teepriv0" in dev ? "/dev/teepriv0 " : ""), \
		(supplicant != "" ? supplicant : "?"), (loopback != "" ? loopback : "?"), (clock != "" ? clock : "?")
	printf "  secure world log: %s\n", secure
	if (revision != "" && initialized && ("/dev/tee0" in dev) && ("/dev/teepriv0" in dev))
		result("PASS", "optee_host_driver_probed", ": real OP-TEE " revision)
	else
		result("FAIL", "optee_host_driver_probed", ": " (revision == "" ? "no 'optee: revision' line" : \
			(!initialized ? "no 'optee: initialized driver'" : "/dev/tee0 or /dev/teepriv0 missing")) \
			(drverr != "" ? "; " drverr : ""))

	if (virt) {
		# The secure world says it is the NS-virtualization build, and
		# the partition runs (host, guest A, host, guest B) passed.
		cmd = "grep -c 'NS-virtualization enabled' '" secure "' 2>/dev/null"
		nv = 0; cmd | getline nv; close(cmd)
		result(nv > 0 && initialized ? "PASS" : "FAIL", "optee_ns_virtualization_host_probed", \
			(nv > 0 ? (initialized ? ": the host's driver runs as a VM of its own" : ": the driver did not initialize") : \
			": the secure log does not say 'NS-virtualization enabled'"))
		why = ""
		if (npart != parts) why = npart " of " parts " partition runs ran"
		for (i = 1; i <= npart && why == ""; i++) {
			if (prc[i] != "0") why = pwho[i] " " psteps[i] ": exit " prc[i] pwhy[i]
			else if (pfail[i] > 0) why = pwho[i] " " psteps[i] pwhy[i]
			else if (pok[i] == 0) why = pwho[i] " " psteps[i] ": no check ran"
			else if (pwho[i] != "host" && !pgseen[i]) why = pwho[i] " " psteps[i] ": the guest gave no verdict"
			else if (pwho[i] != "host" && pgrc[i] != 0) why = pwho[i] " " psteps[i] ": the guest's client exited " pgrc[i]
		}
		result(why == "" ? "PASS" : "FAIL", "optee_partitions_isolated", \
			(why == "" ? ": host and guests see neither the others' object nor their TA instance (" npart " runs)" : ": " why))
		result("SKIP", "optee_fast_calls_as_recorded", \
			": the recorded answers are the plain OP-TEE's (the probe's calls, a7 = 0, are the hypervisor's here)")
	} else {
	# The probe's fast-call answers against the recorded ones.
	nfix = 0
	while ((getline l < fixture) > 0)
		if (l !~ /^#/ && trim(l) != "") { sub(/^optee_probe: /, "", l); fix[++nfix] = trim(l) }
	why = ""
	if (nfix == 0) why = "no recorded answers in " fixture
	else if (probe != "loaded") why = "the probe module was not loaded: " (probe != "" ? probe : "no module")
	else {
		for (i = 1; i <= (nprobe > nfix ? nprobe : nfix) && why == ""; i++)
			if (probed[i] != fix[i])
				why = "line " i ": real OP-TEE answered '" probed[i] "', recorded '" fix[i] "'"
	}
	fixname = fixture; sub(/.*\/tools\//, "tools/", fixname)
	result(why == "" ? "PASS" : "FAIL", "optee_fast_calls_as_recorded", \
		(why == "" ? " (" nprobe " answers, the same as " fixname ")" : ": " why))
	}

	if (plan == "off") {
		printf "  note: xtest not run (VMTEST_XTEST=off)\n"
		printf "%d %d %d\n", np, nf, ns >> counts
		exit
	}
	while ((getline l < excluded) > 0) {
		if (l ~ /^#/ || trim(l) == "") continue
		id = l; sub(/ .*/, "", id)
		excl[id] = after(l, id " ")
		nexcl++
	}
	name = "xtest_regression_" plan
	failed = 0; missing = ""
	for (i = 1; i <= nres; i++) if (verdict[order[i]] != "OK") failed++
	if (plan == "subset") {
		n = split(subset, want, " ")
		for (i = 1; i <= n; i++) if (!(("regression_" want[i]) in verdict)) missing = missing " " want[i]
	}
	t = sprintf(" (%d.%02ds)", xcs / 100, xcs % 100)
	if (!xended) why = "xtest did not finish (see " logf ")"
	else if (xrc == 124 || xrc == 143) why = "timed out"
	else if (nres == 0) why = "no results (exit " xrc ")"
	else if (missing != "") why = "cases that did not run:" missing
	else if (failed > 0) why = failed " case(s) failed"
	else if (xrc != 0) why = "exit " xrc " with no failed case"
	else why = ""
	result(why == "" ? "PASS" : "FAIL", name, t (why != "" ? ": " why : ""))
	printf "          %d cases run; %s; %s; %s%s\n", nres, subtests, casesline, skippedline, \
		(plan == "subset" ? " (xtest counts the cases outside the subset as skipped)" : "")
	for (i = 1; i <= nres; i++) {
		c = order[i]
		if (verdict[c] == "OK") continue
		printf "          FAIL   %s %s %s\n", c, verdict[c], where[c]
		if (firsterr[c] != "") printf "                 %s\n", firsterr[c]
	}
	printf "          excluded on purpose:%s\n", (nexcl == 0 ? " no regression case" : "")
	for (id in excl) printf "            regression_%s: %s\n", id, excl[id]
	printf "            the pkcs11 suite (xtest's default runs it): no Debian package ships its TA\n"
	nsk = 0
	for (i = 1; i <= nres; i++)
		if (verdict[order[i]] == "OK" && (order[i] in skipline)) {
			if (nsk++ == 0) printf "          OK but skipping inside (what Debian's OP-TEE build or TAs lack):\n"
			printf "            %s: %s\n", order[i], skipline[order[i]]
		}
	printf "%d %d %d\n", np, nf, ns >> counts
}
