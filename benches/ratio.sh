#!/usr/bin/env bash
# Issue 11's end-to-end ratio: this tree's e2e bench (mirror staging) against the engine before
# the mirror (commit d61c6f7), in interleaved rounds on this machine, as BENCHMARKS.md §2f–§2i.
#
#   benches/ratio.sh [ROUNDS]        # 3 rounds of 1 M charges, in-process simulator, no remap
#
# The baseline is built once: a worktree of d61c6f7 in target/ratio/src, compiled into its own
# target/ratio/target (a clean release build: 15–25 min on two cores; later runs reuse it). Sharing
# this tree's target folder would save the time but can leave cargo believing this tree's bench
# is up to date while the binary is the other tree's. This tree's bench is built with
# `cargo bench --bench e2e --no-run`. BASE_BIN or NEW_BIN (paths of e2e bench binaries) skip
# either build. E2E_RECORDS and E2E_CONCURRENCY pass through.
#
# SAME_MAPPING=1 runs this tree with the baseline's own mapping and XDM schema (sql/charges.sql and
# sql/charges.xdm.json of d61c6f7, through the bench's E2E_MAPPING): both engines then do the same
# mapping work, and the ratio is the cost of the mirror alone. Without it, this tree maps with
# today's built-in mapping, which writes more XDM fields (identityMap, connectedAccountId,
# currencyCode and the *Major amounts came after d61c6f7).
#
# Prints one row per round: records/s and the CPU-seconds of the process (user + system,
# engine and simulator, from /usr/bin/time) of each, and the throughput ratio.
set -euo pipefail

BASE_REV=d61c6f7
rounds=${1:-3}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
export E2E_RECORDS=${E2E_RECORDS:-1000000} E2E_SIM=inprocess E2E_REMAP=0

# The path of the e2e bench binary that `cargo bench --no-run` builds in the current folder.
build() {
    cargo bench --bench e2e --no-run 2>&1 | tee /dev/stderr |
        sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1
}

if [[ -z "${BASE_BIN:-}" ]]; then
    if [[ ! -d target/ratio/src ]]; then
        mkdir -p target/ratio
        git worktree add --detach target/ratio/src "$BASE_REV" >&2
    fi
    BASE_BIN=$(cd target/ratio/src && CARGO_TARGET_DIR="$root/target/ratio/target" build)
    [[ "$BASE_BIN" = /* ]] || BASE_BIN="$root/target/ratio/src/$BASE_BIN"
fi
if [[ -z "${NEW_BIN:-}" ]]; then
    NEW_BIN=$(build)
    [[ "$NEW_BIN" = /* ]] || NEW_BIN="$root/$NEW_BIN"
fi
for bin in "$BASE_BIN" "$NEW_BIN"; do
    [[ -x "$bin" ]] || { echo "ratio.sh: no bench binary at '$bin'" >&2; exit 1; }
done

new_env=()
mapping_note="today's built-in mapping"
if [[ -n "${SAME_MAPPING:-}" ]]; then
    mapping_dir=$(mktemp -d)
    trap 'rm -rf "$mapping_dir"' EXIT
    for f in charges.sql charges.xdm.json; do
        git show "$BASE_REV:sql/$f" >"$mapping_dir/$f"
    done
    new_env=("E2E_MAPPING=$mapping_dir")
    mapping_note="$BASE_REV's mapping (SAME_MAPPING)"
fi

# One run: "<records/s> <cpu-seconds>"; arguments after the binary are extra environment.
run() {
    local out times rate bin=$1
    shift
    out=$(mktemp)
    times=$(mktemp)
    (cd "${TMPDIR:-/tmp}" && env "$@" /usr/bin/time -o "$times" -f '%U %S' "$bin" --bench >"$out" 2>&1)
    rate=$(sed -n 's/.*= \([0-9]*\) records\/s.*/\1/p' "$out" | head -1)
    times=$(tail -1 "$times" && rm -f "$times")
    rm -f "$out"
    [[ -n "$rate" ]] || { echo "ratio.sh: $bin printed no records/s" >&2; exit 1; }
    awk -v r="$rate" -v t="$times" 'BEGIN { split(t, a, " "); printf "%d %.1f\n", r, a[1] + a[2] }'
}

echo "$E2E_RECORDS charges, in-process simulator; base $BASE_REV: $BASE_BIN; this tree: $NEW_BIN, $mapping_note"
echo
echo "| round | before the mirror ($BASE_REV) | this tree | ratio |"
echo "|---|---|---|---|"
for ((i = 1; i <= rounds; i++)); do
    read -r base_rate base_cpu < <(run "$BASE_BIN")
    read -r new_rate new_cpu < <(run "$NEW_BIN" ${new_env[@]+"${new_env[@]}"})
    awk -v i="$i" -v br="$base_rate" -v bc="$base_cpu" -v nr="$new_rate" -v nc="$new_cpu" \
        'BEGIN { printf "| %d | %d records/s, %.1f CPU-s | %d records/s, %.1f CPU-s | %.2f |\n", i, br, bc, nr, nc, nr / br }'
done
