#!/usr/bin/env python3
"""corio's public headers: every <area>/include/corio/**.hpp in the source tree.

  public_headers.py list ROOT
      Prints them, one a line, relative to ROOT (tests/meson.build builds each one on its own).

  public_headers.py check ROOT STD HEADER... -- COMPILER...
      Preprocesses each public header alone (COMPILER -std=STD -M -MG with only the public
      include directories) and fails when one pulls in fmt (only <corio/fmt.hpp> may), liburing
      or a header under a detail/ directory: those are build dependencies of the library, not of
      its users. HEADER... is the list meson had at configuration; a public header missing from it
      (added since) fails too, as the compile-alone test does not cover it yet; "!HEADER" names
      one this build does not install (it is neither checked nor missing). COMPILER may end with
      -I options for generated headers (config.hpp).

  public_headers.py refuses ROOT STD SOURCE TEXT -- COMPILER...
      Compiles SOURCE (-fsyntax-only, the public include directories) and succeeds when the
      compiler refuses it with TEXT in its diagnostics: a misuse a header rejects at compile time.

Exit status: 0 when every header is clean (the source is refused as expected), 1 otherwise.
"""
import pathlib
import re
import subprocess
import sys

# The one header allowed to include fmt: the opt-in formatters.
FMT_HEADER = "corio/fmt.hpp"


def public_headers(root):
    return sorted(
        p.relative_to(root).as_posix() for p in root.glob("*/include/corio/**/*.hpp") if p.is_file()
    )


def include_name(path):
    """'runtime/include/corio/context.hpp' -> 'corio/context.hpp'."""
    return path.split("/include/", 1)[1]


def dependencies(compiler, std, include_dirs, header):
    """Every file the preprocessor opens for `#include <header>`, missing ones included (-MG)."""
    cmd = compiler + [f"-std={std}", "-M", "-MG", "-x", "c++", "-"]
    cmd += [f"-I{d}" for d in include_dirs]
    run = subprocess.run(cmd, input=f"#include <{header}>\n", capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr}")
    rule = run.stdout.replace("\\\n", " ").split(":", 1)[1]
    return [d.replace("\\ ", " ") for d in re.split(r"(?<!\\)\s+", rule) if d and d != "-"]


def violation(root, header, dep):
    if re.search(r"(^|/)fmt/", dep):
        return None if header == FMT_HEADER else f"fmt (only <{FMT_HEADER}> may include it)"
    if re.search(r"(^|/)liburing(\.h$|/)", dep):
        return "liburing"
    if "detail/" in dep and (not dep.startswith("/") or dep.startswith(str(root) + "/")):
        return "a corio-internal detail/ header"
    return None


def public_include_dirs(root, headers):
    return sorted({str(root / h.split("/include/", 1)[0] / "include") for h in headers})


def refuses(root, std, source, text, compiler):
    cmd = compiler + [f"-std={std}", "-fsyntax-only", source]
    cmd += [f"-I{d}" for d in public_include_dirs(root, public_headers(root))]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0 and text in run.stderr:
        print(f"ok   {source} is refused: {text}")
        return 0
    outcome = "compiles" if run.returncode == 0 else "fails for another reason"
    print(f"FAIL {source} {outcome}; expected a refusal with: {text}\n{run.stderr}")
    return 1


def check(root, std, configured, compiler):
    headers = public_headers(root)
    include_dirs = public_include_dirs(root, headers)
    # "!path": a header this build does not install (fiber.hpp without Boost.Context).
    excluded = {h[1:] for h in configured if h.startswith("!")}
    failed = False
    for h in sorted(set(headers) - set(configured) - excluded):
        print(f"FAIL {h}: not in the headers test's list (new since meson configured; reconfigure)")
        failed = True
    for h in headers:
        if h in excluded:
            print(f"skip <{include_name(h)}>: not part of this build")
            continue
        name = include_name(h)
        bad = [
            (dep, why)
            for dep in dependencies(compiler, std, include_dirs, name)
            if (why := violation(root, name, dep))
        ]
        for dep, why in bad:
            print(f"FAIL <{name}> pulls in {dep}: {why}")
        if not bad:
            print(f"ok   <{name}>")
        failed = failed or bool(bad)
    return 1 if failed else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "list":
        print("\n".join(public_headers(pathlib.Path(argv[2]).resolve())))
        return 0
    if len(argv) > 4 and argv[1] == "check" and "--" in argv:
        sep = argv.index("--")
        root = pathlib.Path(argv[2]).resolve()
        return check(root, argv[3], argv[4:sep], argv[sep + 1 :])
    if len(argv) > 6 and argv[1] == "refuses" and argv[6] == "--":
        root = pathlib.Path(argv[2]).resolve()
        return refuses(root, argv[3], argv[4], argv[5], argv[7:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
