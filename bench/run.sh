#!/usr/bin/env bash
# bench/run.sh: run every benchmark of the bench module once, each library
# against the same freshly started server, and write the raw `go test`
# output to bench/results/latest.txt (benchstat input: compare two runs
# with `benchstat old.txt new.txt`).
#
#   bench/run.sh                       the whole set (about 10 minutes)
#   bench/run.sh -count 5              five series per benchmark
#   bench/run.sh -bench Redis -handoffs 200
#   bench/run.sh scale                 the scale benchmark (TestScale -scale.full,
#                                      about 30 minutes): its table goes to
#                                      results/scale-<UTC time>.txt, the log to
#                                      results/scale-latest.log
#   bench/run.sh scale -scale.n 1000   scale flags follow "scale"
#
# Arguments are passed to `go test` after the defaults, so they override
# them. The servers are bin/etcd, bin/consul and redis-server, as for the
# tests: run ./scripts/test once first on a new machine. The output is
# written even when a benchmark fails; the exit status is go test's.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
mkdir -p results
if [[ ${1:-} == scale ]]; then
	shift
	go test -count=1 -run '^TestScale$' -scale.full -timeout 3h -v "$@" 2>&1 | tee results/scale-latest.log
	status=${PIPESTATUS[0]}
	echo "wrote bench/results/scale-latest.log; the table is in the results/scale-*.txt it names" >&2
	exit "$status"
fi
out=results/latest.txt
{
	# Lines starting with '#' are ignored by benchstat.
	printf '# bench/run.sh %s, commit %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf '# %s cores; load average before the run: %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	go test -run '^$' -bench . -benchtime 1x -count 1 -timeout 90m "$@"
	status=$?
	printf '# load average after the run: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	exit "$status"
} 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
echo "wrote bench/$out" >&2
exit "$status"
