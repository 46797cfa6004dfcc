#!/usr/bin/env python3
"""Writes the C++ block that follows `<!-- readme-example: NAME -->` in a Markdown file to OUT.

Usage: extract.py README.md NAME OUT. Fails if the marker or its ```cpp block is missing, so a
README edit that drops an example breaks the build instead of silently testing nothing.
"""
import re
import sys


def main() -> int:
    readme, name, out = sys.argv[1:4]
    text = open(readme, encoding="utf-8").read()
    pattern = r"<!-- readme-example: " + re.escape(name) + r" -->\s*```cpp\n(.*?)```"
    match = re.search(pattern, text, re.DOTALL)
    if not match:
        print(f"{readme}: no ```cpp block after the marker for '{name}'", file=sys.stderr)
        return 1
    with open(out, "w", encoding="utf-8") as f:
        f.write(f"// Extracted from {readme.split('/')[-1]} ('{name}') at build time: edit it there.\n")
        f.write(match.group(1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
