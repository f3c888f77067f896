"""`make bench`: every benchmark of bench/, one after the other, each printing its own tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    failed = []
    for bench in sorted(HERE.glob("bench_*.py")):
        print(f"\n## {bench.name}\n", flush=True)
        if subprocess.run([sys.executable, str(bench)], cwd=HERE.parent).returncode != 0:
            failed.append(bench.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
