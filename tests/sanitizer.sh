# Sourced by tests/run-integration and tests/run-all: collects what the
# sanitizers of a SANITIZE=1 build report from ANY hostgate process of a run.
#
# The programs of such a build write every ASan/UBSan/LSan report to a file
# (common/sanitizer.c), never only to stderr, which under a web server is its
# error log, a FastCGI stream or /dev/null:
#   $HOSTGATE_SANITIZER_DIR/hostgate.<program>.<pid>  when the variable reaches them
#   /tmp/hostgate-sanitizer/hostgate.<program>.<pid>  otherwise (compiled in)
# sanitizer_begin makes a fresh directory for this run under the second one,
# so that runs of several people on one machine do not see each other's
# reports; the test harness passes it to every hostgate process it starts
# (harness.sanitizer_env). sanitizer_end prints every report of the run and
# fails when there is one. In a build without sanitizers nothing is written
# and both are cheap.

SANITIZER_ROOT=/tmp/hostgate-sanitizer

# Exports HOSTGATE_SANITIZER_DIR, an empty directory every user can write to
# (the web servers run hostgate as www-data).
sanitizer_begin() {
	mkdir -p "$SANITIZER_ROOT" && chmod 1777 "$SANITIZER_ROOT" || return 1
	HOSTGATE_SANITIZER_DIR=$(mktemp -d "$SANITIZER_ROOT/run-XXXXXX") || return 1
	chmod 1777 "$HOSTGATE_SANITIZER_DIR" || return 1
	export HOSTGATE_SANITIZER_DIR
	sanitizer_stamp=$HOSTGATE_SANITIZER_DIR/.started
	: >"$sanitizer_stamp"
}

# Prints each report of this run and returns 1 if there is any: those in the
# run's directory (a subdirectory per gateway set-up), and those a process
# that did not get the variable wrote to the fallback directory since the run
# began (those could also come from someone else's run at the same time: the
# message says so). One line per report, then the first few in full.
sanitizer_end() {
	local reports f n=0
	reports=$( { find "$HOSTGATE_SANITIZER_DIR" -type f -name 'hostgate.*'
		find "$SANITIZER_ROOT" -maxdepth 1 -type f -name 'hostgate.*' \
			-newer "$sanitizer_stamp"; } 2>/dev/null | sort)
	if [ -z "$reports" ]; then
		rm -rf "$HOSTGATE_SANITIZER_DIR"
		return 0
	fi
	for f in $reports; do
		n=$((n + 1))
		case $f in
		"$HOSTGATE_SANITIZER_DIR"/*) ;;
		*) echo "(fallback directory: from a hostgate process that did not get" \
			"HOSTGATE_SANITIZER_DIR, of this run or of another running now)" ;;
		esac
		echo "$f: $(grep -m1 -E '^SUMMARY|ERROR:' "$f")"
		[ $n -le 3 ] && sed -n '1,40p' "$f"
	done
	echo "sanitizer: $n reports from hostgate processes (kept in $HOSTGATE_SANITIZER_DIR): FAILED"
	return 1
}
