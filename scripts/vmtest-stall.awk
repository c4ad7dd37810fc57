# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# One line on a boot that vmtest stopped because its host kernel stalled:
# the step it was in, and each CPU's sampled PC and exception level from
# qemu's "info registers -a", the PC named after the kernel symbol below it
# when the kernel's System.map has one (a guest's or the firmware's PC has
# none).
#
# Variables: map (the kernel's System.map).

function name_of(pc,    line, a, best, bestname) {
	if (pc in named) return named[pc]
	best = ""
	bestname = ""
	# The map's addresses and qemu's PC are both 16 lowercase hex digits:
	# their string order is their numeric order.
	while ((getline line < map) > 0) {
		split(line, a, " ")
		if (length(a[1]) == 16 && a[1] <= pc && a[1] > best) {
			best = a[1]
			bestname = a[3]
		}
	}
	close(map)
	named[pc] = (bestname != "" && substr(pc, 1, 4) == "ffff" ? bestname : "")
	return named[pc]
}

{ sub(/\r$/, "") }
/^@@[A-Z0-9]*BEGIN / && !stalled { step = substr($0, 3) }
/rcu: INFO: rcu_(sched|preempt) (self-)?detected stalls|watchdog: BUG: soft lockup/ && !stalled {
	stalled = 1
	first = $0
}
/^CPU#[0-9]+/ { cpu = substr($1, 5); next }
/^ *PC=/ && cpu != "" {
	split($1, a, "=")
	pc[cpu] = pc[cpu] (pc[cpu] != "" ? "," : "") tolower(a[2])
	next
}
/^PSTATE=/ && cpu != "" {
	el[cpu] = $3
	cpus[cpu] = 1
	next
}

END {
	out = "the host kernel stalled"
	if (step != "") out = out " during \"" step "\""
	if (first != "") {
		sub(/^\[ *[0-9.]+\] /, "", first)
		out = out " (" first ")"
	}
	for (c = 0; c in cpus; c++) {
		n = split(pc[c], pcs, ",")
		s = ""
		for (i = 1; i <= n; i++) {
			if (i > 1 && pcs[i] == pcs[i - 1]) {
				s = s "="
				continue
			}
			sym = name_of(pcs[i])
			s = s (i > 1 ? " " : "") pcs[i] (sym != "" ? " " sym : "")
		}
		s = s " (" n " sample(s), \"=\" the same PC again)"
		out = out "; CPU " c " " el[c] " PC " s
	}
	if (!(0 in cpus)) out = out "; no CPU sample in the log"
	print out
}
