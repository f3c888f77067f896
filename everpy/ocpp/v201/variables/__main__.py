"""``python -m everpy.ocpp.v201.variables`` writes docs/ocpp201-device-model.md from the definitions (a test
fails while the file is out of date)."""

from __future__ import annotations

from pathlib import Path

from everpy.ocpp.v201.device_model import render_markdown
from everpy.ocpp.v201.variables import DEFINITIONS

DOC = Path(__file__).resolve().parents[4] / "docs" / "ocpp201-device-model.md"
COMMAND = "python -m everpy.ocpp.v201.variables"


def main() -> None:
    DOC.write_text(render_markdown(DEFINITIONS) + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
