# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# Runs inside the emulated host (busybox awk) on xtest's whole output and
# prints only what scripts/vmtest-optee.awk reads, so that a full regression
# run does not cost the console tens of thousands of lines:
#   @@XCASE <case> <title>          each case as it starts
#   @@XERR <case> <line>            the first error line of a case
#   @@XSKIP <case> <line>           the first "skip" line inside a case
#   @@XRES <line>                   every line of xtest's closing summary
# With -v p=PREFIX, PREFIX replaces "@@X" (a guest's run says @@GX).

BEGIN { if (p == "") p = "@@X" }
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }

summary { print p "RES " $0; next }
/^Result of testsuite / { summary = 1; print p "RES " $0; next }
/^\* [a-z0-9]+_[0-9][a-z0-9_]* / {
	cur = $2
	t = $0; sub(/^\* [a-z0-9]+_[0-9][a-z0-9_]* /, "", t)
	print p "CASE " cur " " trim(t)
	next
}
cur != "" && !(cur in err) && (/\.c:[0-9]+: / || / ERROR/ || /FAILED/) {
	err[cur] = 1
	print p "ERR " cur " " trim($0)
	next
}
cur != "" && !(cur in skip) && tolower($0) ~ /skip/ {
	skip[cur] = 1
	print p "SKIP " cur " " trim($0)
}
