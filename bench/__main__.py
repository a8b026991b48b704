"""`make bench` / `python -m bench [NAME ...]`: run the named benchmarks, or all of them.

A benchmark is a module `bench/NAME.py` with a `main() -> int`; it prints its own
table and the ratio against its peer, measured in the same run.
"""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if not m.name.startswith("_"))
    unknown = sorted(set(names) - set(found))
    if unknown:
        print(f"bench: no benchmark named {', '.join(unknown)} (have: {', '.join(found)})",
              file=sys.stderr)
        return 2
    if not found:
        print("bench: no benchmarks yet")
    status = 0
    for name in names or found:
        print(f"== bench {name}", flush=True)
        status |= importlib.import_module(f"bench.{name}").main()
    return status


sys.exit(main(sys.argv[1:]))
