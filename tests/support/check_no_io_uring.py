#!/usr/bin/env python3
"""Checks a suite run under the no_io_uring wrapper (tests/run.sh --no-io-uring).

Usage: check_no_io_uring.py FILTERED_LOG [UNFILTERED_LOG]

The logs are meson's JSON test logs (one object a line). With io_uring_setup refused, every
test named "... [io_uring]" must SKIP (the backend is unavailable: exit 77, not a failure) and
every other test must pass. SKIP is accepted for a test that the unfiltered run also skipped
(spin missing, say), and noted for one that it did not run; a test that the unfiltered run
passed and that quietly gives up under the filter is an error. Prints each error and note, and
exits 1 if there is any error.
"""
import json
import os
import sys


def results(path):
    with open(path) as log:
        return {entry['name']: entry['result'] for entry in map(json.loads, log) if entry}


def main():
    filtered = results(sys.argv[1])
    unfiltered = {}
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        unfiltered = results(sys.argv[2])
    problems = []
    for name, result in sorted(filtered.items()):
        if name.endswith('[io_uring]'):
            if result != 'SKIP':
                problems.append(f'{name}: {result}, expected SKIP (io_uring is refused)')
        elif result == 'SKIP':
            if name not in unfiltered:
                print(f'no-io-uring: note: {name}: SKIP (no unfiltered result to compare with)')
            elif unfiltered[name] != 'SKIP':
                problems.append(f'{name}: SKIP under the filter, {unfiltered[name]} without it')
        elif result != 'OK':
            problems.append(f'{name}: {result}')
    skipped = sum(1 for name in filtered if name.endswith('[io_uring]'))
    for problem in problems:
        print(f'no-io-uring: {problem}')
    print(f'no-io-uring: {len(filtered)} tests, {skipped} on io_uring (must SKIP), '
          f'{len(problems)} problems')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
