# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# The list of failures that opens scripts/vmtest's summary: reads the
# per-boot blocks (what vmtest-report.awk, vmtest-optee.awk and
# vmtest-gxtest.awk printed) and prints, for each "  FAIL  " result, its
# boot, its line (cut at `width` characters) and where to look: the line of
# the boot's serial log that shows it, with the lines of the log that belong
# to the failed item. Variables: run (the run's log directory, which holds
# KV-MODE.log), width (default 240).

function clip(s, w) {
	return length(s) <= w ? s : substr(s, 1, w) " [... " length(s) - w " more characters, in the block below]"
}

# frame(name, detail): sets fb and fe to the first and last line of the log
# that belong to result `name` (0 when the log has none): its own frame of
# markers (scripts/vmtest's init scripts), else the first line that says
# what the report said of it (`detail`), else the markers of its part.
function frame(name, detail,    b, e, i, g) {
	fb = fe = 0
	# A test binary, a benchmark, an end-to-end run or a guest's xtest:
	# its own @@...BEGIN NAME / @@...END NAME frame.
	for (i = 1; i <= nlog; i++) {
		if (index(loglines[i], "@@") != 1) continue
		if (!fb && loglines[i] ~ /^@@[A-Z0-9]*BEGIN / && word2(loglines[i]) == name) fb = i
		else if (fb && loglines[i] ~ /^@@[A-Z0-9]*END / && word2(loglines[i]) == name) {
			fe = i
			return
		}
	}
	if (fb) { fe = nlog; return }
	for (i = 1; length(detail) >= 12 && i <= nlog; i++)
		if (index(loglines[i], detail)) { fb = fe = i; return }
	b = ""
	if (name == "kvm_initialised_at_el2") { b = "^@@KERNEL "; e = "^@@DEVKVM " }
	else if (name ~ /^xtest_regression_/) { b = "^@@XTESTBEGIN "; e = "^@@XTESTEND " }
	else if (name == "tee_client_xtest_tas_host") { b = e = "^@@TC " }
	else if (name ~ /^tee_client_xtest_tas_/) {
		# The client's cases in that guest run: the lines of its frame.
		g = "guest_xtest_" substr(name, 22)
		b = "^@@GXTESTBEGIN " g " "; e = "^@@GXTESTEND " g " "
	}
	else if (name == "optee_partitions_isolated") { b = "^@@PARTBEGIN "; e = "^@@PARTEND " }
	else if (name == "optee_fast_calls_as_recorded") { b = e = "^@@PROBE " }
	else if (name ~ /^optee_/) { b = e = "^@@OPTEE " }
	for (i = 1; b != "" && i <= nlog; i++) {
		if (!fb && loglines[i] ~ b) fb = i
		if (fb && loglines[i] ~ e) fe = i
	}
}
function word2(s,    f) { split(s, f, " "); return f[2] }

# telling(): the line of the frame that shows the failure best: a non-zero
# exit, then a failed case, then an error; else the frame's end.
function telling(name,    p, i, pat, n) {
	n = split("(rc|exit)[= ][1-9]|QEMU exit|HOSTSTALL;^(@@[A-Z]+ )?not ok |FAIL|timed out|Kernel panic;[Ee]rror|unexpected value|failed|refused", pat, ";")
	for (p = 1; p <= n; p++)
		for (i = fb; i <= fe; i++)
			if (loglines[i] ~ pat[p] && (name != "kvm_initialised_at_el2" || loglines[i] ~ /^@@/)) return i
	return fe
}

function load(logf,    l) {
	nlog = 0
	while ((getline l < logf) > 0) loglines[++nlog] = l
	close(logf)
}

/^[0-9][^ ]*\/[a-z]+: kernel / { boot = $1; sub(/:$/, "", boot); next }
/^  FAIL  / {
	nfail++
	fboot[nfail] = boot
	fline[nfail] = $0
	fname[nfail] = $2
	sub(/:$/, "", fname[nfail])
	d = substr($0, 9 + length($2))
	sub(/^ \([0-9.]+s\)/, "", d)
	sub(/^:? */, "", d)
	fdetail[nfail] = d
	next
}

END {
	if (width == "") width = 240
	if (nfail == 0) { print "failures: none"; exit }
	printf "failures (%d):\n", nfail
	loaded = ""
	for (k = 1; k <= nfail; k++) {
		b = fboot[k]
		printf "  %s: %s\n", b, clip(substr(fline[k], 9), width)
		logf = b
		sub(/\//, "-", logf)
		logf = run "/" logf ".log"
		if (logf != loaded) { load(logf); loaded = logf }
		if (nlog == 0) { printf "      see %s (not found)\n", logf; continue }
		frame(fname[k], fdetail[k])
		if (!fb) {
			printf "      %s:%d: %s (no line of the log is %s's; this is where it ends)\n", logf, nlog, \
				clip(loglines[nlog], width), fname[k]
			continue
		}
		i = telling(fname[k])
		printf "      %s:%d: %s\n", logf, i, clip(loglines[i], width)
		if (fe > fb) printf "      (lines %d-%d of that log are %s's)\n", fb, fe, fname[k]
	}
}
