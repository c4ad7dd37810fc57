# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# scripts/vmtest's estimate of what is left of a run, from the phase times
# of the newest earlier run that booted every boot of this plan with the
# same settings: its summary's "bench settings: ..." and "phases (wall):
# NAME SECONDSs ..." lines. Prints one line, "estimate: ...".
# Arguments: the earlier runs' log directories, newest first.
# Variables: boots (this plan's boots, "KV/MODE ..."), left (the names of
# the phases still to run, as vmtest's phase() names them), settings (this
# run's "bench settings: ..." line, without the prefix).

function minutes(s) {
	if (s < 60) return "under a minute"
	return "about " int((s + 59) / 60) " min"
}

# read_run(dir): loads the run's settings and phase times (run_set, t[]);
# returns whether it has phase times.
function read_run(dir,    f, l, n, i, w, has) {
	f = dir "/summary"
	run_set = ""
	split("", t)
	has = 0
	while ((getline l < f) > 0) {
		if (index(l, "bench settings: ") == 1) run_set = substr(l, 17)
		else if (index(l, "phases (wall): ") == 1) {
			has = 1
			split("", t)
			n = split(substr(l, 16), w, " ")
			for (i = 1; i + 1 <= n; i += 2) {
				sub(/s$/, "", w[i + 1])
				t[w[i]] = w[i + 1] + 0
			}
		}
	}
	close(f)
	return has
}

BEGIN {
	nb = split(boots, b, " ")
	nl = split(left, l, " ")
	nruns = ARGC - 1
	for (r = 1; r < ARGC; r++) {
		if (!read_run(ARGV[r])) continue
		timed++
		if (run_set != settings) { othersettings++; continue }
		lacking = ""
		for (i = 1; i <= nb; i++) if (!(("boot-" b[i]) in t)) lacking = lacking " " b[i]
		if (lacking != "") { fewer++; continue }
		chosen = ARGV[r]
		break
	}
	if (chosen == "") {
		if (nruns == 0) why = "no earlier run in the log directory"
		else if (timed == 0)
			why = "none of the " nruns " earlier run(s) recorded its phase times (a summary's \"phases (wall):\" line)"
		else
			why = "none of the " timed " earlier run(s) with phase times booted " boots " with " settings \
				" (" othersettings + 0 " had other settings, " fewer + 0 " fewer boots)"
		print "no estimate yet: " why
		exit
	}
	sum = 0
	untimed = ""
	for (i = 1; i <= nl; i++) {
		if (l[i] in t) sum += t[l[i]]
		else untimed = untimed " " l[i]
	}
	name = chosen
	sub(/\/+$/, "", name)
	sub(/.*\//, "", name)
	printf "estimate: %s left (the phase times of run %s%s)\n", minutes(sum), name, \
		(untimed != "" ? "; it did not time" untimed : "")
	exit
}
