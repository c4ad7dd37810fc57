# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# Reads one boot's serial log (markers written by the init of scripts/vmtest)
# and prints its summary block. Variables: kv, mode, re (the KVM init line the
# mode must print), expfile (expected tests, one per line), counts (file to
# append "pass fail skip" to), logf (the log's path, for messages), e2eexp
# (expected end-to-end runs, one per line; empty for none).

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function after(s, marker) { return trim(substr(s, index(s, marker) + length(marker))) }

# The TEE service's log (tools/teed on the emulated host), one frame per
# start of it, after the end-to-end runs through it.
/@@TEEDLOGBEGIN / { teedlog = after($0, "@@TEEDLOGBEGIN "); next }
/@@TEEDLOGEND / { teedlog = ""; next }
teedlog != "" { if (trim($0) != "") teedlines[++nteed] = "start " teedlog ": " trim($0); next }

/@@KERNEL / { kver = after($0, "@@KERNEL ") ; next }
/@@DMESG / {
	l = after($0, "@@DMESG ")
	if (l ~ /CPU: All CPU\(s\) started at EL2/) el2 = 1
	if (l ~ /started at EL1/) el1 = 1
	if (l ~ re) kvmline = l
	else if (l ~ /kvm \[[0-9]+\]: .*mode initialized/) otherkvm = l
	next
}
/@@DEVKVM / { devkvm = after($0, "@@DEVKVM ") ; next }
/@@BEGIN / { cur = after($0, "@@BEGIN "); last[cur] = ""; ncase[cur] = 0; diag = ""; next }
/@@END / {
	split(after($0, "@@END "), f, " ")
	name = f[1]; sub(/^rc=/, "", f[2]); sub(/^cs=/, "", f[3])
	rc[name] = f[2]; secs[name] = sprintf("%d.%02d", f[3] / 100, f[3] % 100)
	done[name] = 1; cur = ""
	next
}
/@@DONE/ { alldone = 1; next }
/Kernel panic - not syncing/ { panicline = trim($0) }
/@@QEMU / { qemu = after($0, "@@QEMU ") ; next }
/^@@HOSTSTALL/ { qemu = "stopped: the host kernel stalled" ; next }
# Inside a test: run_kselftest.sh prints its own KTAP lines and prefixes the
# test's output with "# ".
cur != "" && $0 !~ /^# / {
	if ($0 ~ /^(not )?ok [0-9]+ selftests: /) {
		runner[cur] = "pass"
		if ($0 ~ /^not ok/) runner[cur] = ($0 ~ /# TIMEOUT/ ? "timeout" : "fail")
		else if ($0 ~ /# SKIP/) runner[cur] = "skip"
		else if ($0 ~ /# XFAIL/) runner[cur] = "xfail"
		if (match($0, /# exit=[0-9]+/)) runnerrc[cur] = substr($0, RSTART + 7, RLENGTH - 7)
	}
	next
}
cur != "" && $0 ~ /^# (Totals:|selftests: |timeout set to |overriding timeout)/ { next }
cur != "" {
	line = substr($0, 3)
	if (line ~ /^(not )?ok [0-9]+ /) {
		k = ++ncase[cur]
		st = "ok"
		if (line ~ /^not ok/) st = "FAIL"
		else if (line ~ /# SKIP/) st = "SKIP"
		else if (line ~ /# XFAIL/) st = "XFAIL"
		cname = line; sub(/^(not )?ok [0-9]+ /, "", cname); sub(/ # (SKIP|XFAIL) /, ": ", cname)
		if (st == "SKIP" && caseskip[cur] == "") { caseskip[cur] = cname; sub(/^[^:]*: /, "", caseskip[cur]) }
		casestr[cur, k] = sprintf("%-6s %s", st, cname) (st == "FAIL" && diag != "" ? "\n                 " diag : "")
		diag = ""
	} else if (line ~ /^# / && line !~ /^# Totals:/) {
		if (diag == "") diag = substr(line, 3)
	} else if (line ~ /^1\.\.0 # SKIP /) {
		skipall[cur] = after(line, "# SKIP ")
	} else if (trim(line) != "" && line !~ /^(TAP version|1\.\.[0-9]+$)/) {
		last[cur] = trim(line)
	}
}
/@@BENCHBEGIN / { bench = after($0, "@@BENCHBEGIN "); next }
/@@BENCHEND / { benchrc[bench] = after($0, "rc="); benches[++nbench] = bench; bench = ""; next }
bench != "" { benchout[bench] = benchout[bench] "      " $0 "\n"; next }
# The end-to-end runs (scripts/vmtest's e2e_write_run): the VMM's output,
# which carries the guest's console (its init marks its lines with "@@G ")
# and the VMM's own report lines ("tosfwd-vmm: ...").
/@@E2EBEGIN / { e2e = after($0, "@@E2EBEGIN "); e2encase[e2e] = 0; e2ediag = ""; e2entail[e2e] = 0; next }
/@@E2EEND / {
	split(after($0, "@@E2EEND "), f, " ")
	name = f[1]; sub(/^rc=/, "", f[2]); sub(/^cs=/, "", f[3])
	e2erc[name] = f[2]; e2esecs[name] = sprintf("%d.%02d", f[3] / 100, f[3] % 100)
	e2edone[name] = 1; e2e = ""
	next
}
e2e != "" && /^@@G dmesg / {
	l = after($0, "@@G dmesg ")
	e2edmesg[e2e] = e2edmesg[e2e] "          guest: " l "\n"
	if (l ~ /optee: initialized driver/) e2einit[e2e] = 1
	next
}
e2e != "" && /^@@G client rc=/ { e2eclient[e2e] = after($0, "@@G client rc="); next }
e2e != "" && /^@@G / { e2eguest[e2e] = e2eguest[e2e] "          guest: " after($0, "@@G ") "\n"; next }
# The host's notes on a run through the TEE service (starts, the fault
# run's SIGKILL), and the fault run's client's notes (--service-fault).
e2e != "" && /^@@H / { e2ehost[e2e] = e2ehost[e2e] "          host: " after($0, "@@H ") "\n"; next }
e2e != "" && /^# service-fault: / { e2enote[e2e] = e2enote[e2e] "          client: " after($0, "# ") "\n"; next }
e2e != "" && /^1\.\.[0-9]+$/ { e2eplan[e2e] = substr($0, 4) + 0; next }
e2e != "" && /^(not )?ok [0-9]+ / {
	k = ++e2encase[e2e]
	st = "ok"
	if ($0 ~ /^not ok/) { st = "FAIL"; e2ecasefail[e2e] = 1 }
	else if ($0 ~ /# SKIP/) { st = "SKIP"; e2ecasefail[e2e] = 1 }
	cname = $0; sub(/^(not )?ok [0-9]+ /, "", cname); sub(/ # (SKIP|XFAIL) /, ": ", cname)
	e2ecase[e2e, k] = sprintf("%-6s %s", st, cname) (st == "FAIL" && e2ediag != "" ? "\n                 " e2ediag : "")
	e2ediag = ""
	next
}
e2e != "" && /^1\.\.0 # SKIP / { e2eskip[e2e] = after($0, "# SKIP "); next }
e2e != "" && /^# / && !/^# Totals:/ { if (e2ediag == "") e2ediag = substr($0, 3); next }
e2e != "" && /^tosfwd-vmm: guest / {
	e2evmm[e2e] = after($0, "tosfwd-vmm: ")
	if (match($0, /after [0-9.]+ s wall/)) e2ewall[e2e] = substr($0, RSTART + 6, RLENGTH - 13)
	next
}
e2e != "" && /^tosfwd-vmm: [0-9]+ forwarded calls/ { e2ecalls[e2e] = after($0, "tosfwd-vmm: "); next }
e2e != "" && /^tosfwd-vmm: error: / { e2eerr[e2e] = after($0, "tosfwd-vmm: error: "); next }
# The VMM's warnings: shown for the runs through the TEE service (what it
# saw of the service going and coming back).
e2e != "" && /^tosfwd-vmm: warning: / { e2ewarn[e2e] = e2ewarn[e2e] "          vmm: " after($0, "tosfwd-vmm: ") "\n"; next }
e2e != "" && trim($0) != "" && !/^(TAP version|# Totals:)/ {
	e2etail[e2e, ++e2entail[e2e] % 8] = trim($0)
	next
}

function result(st, name, detail) {
	printf "  %-5s %s%s\n", st, name, detail
	if (st == "PASS") np++
	else if (st == "SKIP") ns++
	else nf++
}

END {
	printf "%s/%s: kernel %s | %s | %s\n", kv, mode, (kver != "" ? kver : "?"), \
		(kvmline != "" ? kvmline : "no KVM init line for this mode"), \
		(el2 ? "started at EL2" : (el1 ? "started at EL1" : "EL unknown"))
	if (el2 && kvmline != "" && devkvm == "yes")
		result("PASS", "kvm_initialised_at_el2", "")
	else
		result("FAIL", "kvm_initialised_at_el2", sprintf(": EL2 %s, /dev/kvm %s, %s", \
			(el2 ? "yes" : "no"), (devkvm != "" ? devkvm : "?"), \
			(otherkvm != "" ? "wrong mode: " otherkvm : "want " re)))
	while ((getline name < expfile) > 0) {
		if (name == "") continue
		if (!(name in done)) {
			result("FAIL", name, ": missing (no result; " (qemu != "" ? "qemu " qemu : "the run ended early") ", see " logf ")")
			continue
		}
		t = " (" secs[name] "s)"
		r = rc[name]
		# run_kselftest.sh's verdict on the test, when it printed one.
		if (runner[name] == "pass" || runner[name] == "xfail") r = 0
		else if (runner[name] == "skip") r = 4
		else if (runner[name] == "timeout") r = 124
		else if (runner[name] == "fail") r = (runnerrc[name] != "" ? runnerrc[name] : 1)
		else if (name in done) r = "no verdict from run_kselftest.sh (exit " r ")"
		if (r == 0 && !casefail[name]) result("PASS", name, t)
		else if (r == 0) result("FAIL", name, t ": exit 0 but a case failed")
		else if (r == 4) result("SKIP", name, t ": " (skipall[name] != "" ? skipall[name] : \
			(caseskip[name] != "" ? caseskip[name] : last[name])))
		else if (r == 124 || r == 143 || r == 137) result("FAIL", name, t ": timed out (exit " r ")")
		else result("FAIL", name, t ": exit " r (ncase[name] == 0 && last[name] != "" ? ": " last[name] : ""))
		# A skipped test's cases all say the reason printed above.
		if (r != 4)
			for (k = 1; k <= ncase[name]; k++) printf "          %s\n", casestr[name, k]
	}
	for (i = 1; i <= nbench; i++) {
		b = benches[i]
		printf "  bench %s (exit %s):\n%s", b, benchrc[b], benchout[b]
		if (benchrc[b] != 0) result("FAIL", b, ": benchmark exit " benchrc[b])
	}
	while (e2eexp != "" && (getline name < e2eexp) > 0) {
		if (name == "") continue
		if (!(name in e2edone)) {
			result("FAIL", name, ": missing (no result; " (qemu != "" ? "qemu " qemu : "the run ended early") ", see " logf ")")
			continue
		}
		t = " (" (e2ewall[name] != "" ? "guest " e2ewall[name] "s wall from VM creation to its stop; " : "") \
			"run " e2esecs[name] "s with VMM start-up)"
		r = e2erc[name]
		why = ""
		if (name ~ /_refused_without_pkvm$/) {
			# Expected: tosfwd-vmm --protected refused, exit 1, saying why.
			if (r != 1 || e2eerr[name] !~ /cannot create a protected VM/)
				why = "want tosfwd-vmm --protected to exit 1 with 'cannot create a protected VM', got exit " r \
					(e2eerr[name] != "" ? ": " e2eerr[name] : "")
			result(why == "" ? "PASS" : "FAIL", name, t (why != "" ? ": " why : ": " e2eerr[name]))
			continue
		}
		if (r == 124 || r == 143 || r == 137) why = "timed out (exit " r ")"
		else if (r != 0) why = "tosfwd-vmm exit " r (e2eerr[name] != "" ? ": " e2eerr[name] : (e2evmm[name] != "" ? ": " e2evmm[name] : ""))
		else if (!e2einit[name]) why = "no 'optee: initialized driver' in the guest's kernel log"
		else if (e2eskip[name] != "") why = "the client skipped: " e2eskip[name]
		else if (e2eclient[name] != "0") why = "the client exited " (e2eclient[name] != "" ? e2eclient[name] : "? (no exit line)")
		else if (e2eplan[name] == 0 || e2encase[name] != e2eplan[name]) why = "the client ran " e2encase[name] " of " e2eplan[name] + 0 " cases"
		else if (e2ecasefail[name]) why = "a client case failed"
		# A guest that shares nothing: the VMM must have said why its calls failed.
		else if (name ~ /_unshared$/ && e2ewarn[name] !~ /has not shared with the host/)
			why = "no warning from the VMM that the guest's message was in memory it had not shared"
		result(why == "" ? "PASS" : "FAIL", name, t (why != "" ? ": " why : ""))
		printf "%s%s%s%s", e2eguest[name], e2edmesg[name], e2ehost[name], e2enote[name]
		if (e2ehost[name] != "" || name ~ /_unshared$/) printf "%s", e2ewarn[name]
		for (k = 1; k <= e2encase[name]; k++) printf "          %s\n", e2ecase[name, k]
		if (e2ecalls[name] != "") printf "          %s\n", e2ecalls[name]
		if (why != "") {
			n = e2entail[name]
			for (k = (n > 8 ? n - 7 : 1); k <= n; k++) printf "          | %s\n", e2etail[name, k % 8]
		}
	}
	if (nteed > 0) {
		printf "  tosfwd-teed's output (%d line(s)%s):\n", nteed, (nteed > 20 ? ", the last 20" : "")
		for (k = (nteed > 20 ? nteed - 19 : 1); k <= nteed; k++) printf "          %s\n", teedlines[k]
	}
	if (!alldone) printf "  note: the guest did not reach the end of its test list%s\n", \
		(panicline != "" ? ": " panicline : "")
	printf "%d %d %d\n", np, nf, ns >> counts
}
