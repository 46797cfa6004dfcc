#!/usr/bin/env bash
# Model-checks corio's cross-thread notify protocol (tests/model/notify.pml) with SPIN.
#
# The model must verify without error in each configuration below, exhaustively (no search
# depth cut-off) and not vacuously (the home thread can go to sleep: its end is reached); each
# deliberately broken variant must be rejected with an assertion violation. One verdict line per
# run, with the number of states explored. Exit status: 0 when every verdict is as required,
# 1 otherwise, 77 (a SKIP for meson) when spin or a C compiler is missing.
#
# Run it directly or as `meson test --suite model`. CC picks the compiler for SPIN's verifier.
set -euo pipefail

model=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/notify.pml
cc=${CC:-cc}

if ! command -v spin >/dev/null; then
    echo "SKIP: spin is not installed (Debian package: spin)"
    exit 77
fi
if ! command -v "$cc" >/dev/null; then
    echo "SKIP: no C compiler ($cc) to build SPIN's verifier"
    exit 77
fi

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
failed=false
runs=0

# The two configurations of the correct model: threads racing with each other, and signal
# handlers racing with the loop. Each broken variant runs in the first one.
threads=(-DPRODUCERS=2 -DSCHEDULES=1 -DSIGNALS=0)
signals=(-DPRODUCERS=1 -DSCHEDULES=2 -DSIGNALS=1)

# property_of LOG: which property a failed assertion stands for.
property_of() {
    if grep -q 'assertion violated (quiet<=' "$1"; then
        echo "property 2, busy loop"
    else
        echo "property 1, lost wake-up"
    fi
}

# verify EXPECT LABEL SPIN_OPTION...: EXPECT is "verified" or "rejected".
verify() {
    local expect=$1 label=$2
    shift 2
    local dir=$work/$((runs += 1))
    mkdir "$dir"
    cp "$model" "$dir/notify.pml"
    if ! (cd "$dir" && spin -a "$@" notify.pml >spin.log 2>&1 &&
        "$cc" -O1 -DSAFETY -w -o pan pan.c >cc.log 2>&1 &&
        ./pan -m10000 -w22 >pan.log 2>&1); then
        echo "FAIL $label: the verifier could not be generated, built or run"
        cat "$dir"/*.log
        failed=true
        return
    fi
    local log=$dir/pan.log errors states
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$log")
    states=$(awk '/states, stored/ { print $1 }' "$log")
    if [[ -z $errors || -z $states ]]; then
        echo "FAIL $label: unexpected verifier output"
        cat "$log"
        failed=true
        return
    fi

    if [[ $expect == verified ]]; then
        # The home thread's "-end-" is reached only by going to sleep for good.
        local home_end_unreached
        home_end_unreached=$(awk '/^unreached in proctype/ { home = ($4 == "home") }
                                  home && /"-end-"/ { print "yes" }' "$log")
        if ((errors == 0)) && ! grep -q 'max search depth too small' "$log" &&
            [[ -z $home_end_unreached ]]; then
            echo "PASS $label: verified, no error in $states states (exhaustive)"
            return
        fi
        echo "FAIL $label: expected no error; $errors error(s) after $states states"
        grep -E 'pan:|error|too small' "$log" || true
        [[ -n $home_end_unreached ]] && echo "(the home thread never goes to sleep: vacuous)"
        if [[ -f $dir/notify.pml.trail ]]; then
            echo "counterexample:"
            (cd "$dir" && spin -t -p -g -l "$@" notify.pml) | tail -n 60
        fi
        failed=true
    else
        if ((errors > 0)) && grep -q 'assertion violated' "$log"; then
            echo "PASS $label: rejected as required ($(property_of "$log")) after $states states"
            return
        fi
        echo "FAIL $label: the broken variant must be rejected; $errors error(s) in $states states"
        grep -E 'pan:|error' "$log" || true
        failed=true
    fi
}

verify verified "notify.pml, 2 producers + stop()" "${threads[@]}"
verify verified "notify.pml, 1 producer x2 + stop() + a signal handler" "${signals[@]}"
for bug in BUG_NO_RECHECK BUG_RELAXED_ANNOUNCE BUG_ACCEPT_NO_FENCE BUG_FOREIGN_ACCEPT \
    BUG_NO_DRAIN; do
    verify rejected "notify.pml -D$bug" "${threads[@]}" "-D$bug"
done

if [[ $failed == true ]]; then
    echo "model check: FAILED"
    exit 1
fi
echo "model check: all verdicts as required"
