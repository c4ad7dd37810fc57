# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# Reads one boot's serial log (markers written by the init of scripts/vmtest)
# and prints its summary block. Variables: kv, mode, re (the KVM init line the
# mode must print), expfile (expected tests, one per line), counts (file to
# append "pass fail skip" to), logf (the log's path, for messages).

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function after(s, marker) { return trim(substr(s, index(s, marker) + length(marker))) }

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
		for (k = 1; k <= ncase[name]; k++) printf "          %s\n", casestr[name, k]
	}
	for (i = 1; i <= nbench; i++) {
		b = benches[i]
		printf "  bench %s (exit %s):\n%s", b, benchrc[b], benchout[b]
		if (benchrc[b] != 0) result("FAIL", b, ": benchmark exit " benchrc[b])
	}
	if (!alldone) printf "  note: the guest did not reach the end of its test list%s\n", \
		(panicline != "" ? ": " panicline : "")
	printf "%d %d %d\n", np, nf, ns >> counts
}
