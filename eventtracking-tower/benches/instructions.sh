#!/usr/bin/env bash
# Instructions and allocations per request of each variant of the overhead
# bench, in process, under callgrind (stable on a noisy machine).
# Each variant runs at two request counts; the difference divided by the
# difference in requests leaves out start-up and shutdown. Every thread is
# counted (the delivery thread too).
#
#   eventtracking-tower/benches/instructions.sh [LOW HIGH]   (default 1000 6000)
#   EVENTTRACKING_BENCH_HTTP=1 eventtracking-tower/benches/instructions.sh   (over
#       loopback HTTP instead: server and client threads both counted)
set -euo pipefail
low=${1:-1000}
high=${2:-6000}
cd "$(dirname "$0")/../.."
bench=$(cargo bench -p eventtracking-tower --bench overhead --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bench" ] || { echo "no bench executable found" >&2; exit 1; }

# Prints "instructions allocations" for one variant at one request count.
measure() {
    local out
    out=$(EVENTTRACKING_BENCH_VARIANT=$1 EVENTTRACKING_BENCH_REQUESTS=$2 \
        valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file=/dev/null "$bench" 2>&1)
    local ir allocs
    ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out")
    allocs=$(sed -n 's/.* \([0-9.]*\) allocations\/request.*/\1/p' <<<"$out")
    echo "$ir $(awk -v a="$allocs" -v n="$2" 'BEGIN { printf "%.0f", a * n }')"
}

printf '%-12s %14s %14s\n' variant instr/request allocs/request
for variant in bare layer layer+event; do
    read -r ir1 al1 < <(measure "$variant" "$low")
    read -r ir2 al2 < <(measure "$variant" "$high")
    awk -v v="$variant" -v i1="$ir1" -v i2="$ir2" -v a1="$al1" -v a2="$al2" -v n="$((high - low))" \
        'BEGIN { printf "%-12s %14.0f %14.1f\n", v, (i2 - i1) / n, (a2 - a1) / n }'
done
