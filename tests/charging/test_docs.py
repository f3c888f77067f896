"""docs/charging.md shows the transition table and the error effects: they must match the code."""

from __future__ import annotations

from pathlib import Path

from everpy_modules.EvseManager.charger import TRANSITIONS
from everpy_modules.EvseManager.error_effects import ERROR_EFFECTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "charging.md"


def section(name: str) -> str:
    text = DOC.read_text()
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_transition_table_in_docs_matches_the_code() -> None:
    rows = [f"| {r.source} | {r.trigger} | {r.guard or ''} | {r.action or ''} | {r.target} |" for r in TRANSITIONS]
    expected = "\n".join(["| from | trigger | guard | action | to |", "|---|---|---|---|---|", *rows]) + "\n"
    assert section("transitions") == expected


def test_error_table_in_docs_matches_the_code() -> None:
    rows = [
        f"| `{name}` | {'yes' if e.stops_charging else 'no (logged)'} | {e.ends_transaction_with or '-'} |"
        for name, e in ERROR_EFFECTS.items()
    ]
    header = ["| error | stops charging | ends the transaction with |", "|---|---|---|"]
    assert section("errors") == "\n".join([*header, *rows]) + "\n"


def test_every_error_the_board_interface_lists_has_a_documented_effect() -> None:
    import yaml

    errors = yaml.safe_load((DOC.parents[1] / "everpy/definitions/errors/evse_board_support.yaml").read_text())
    listed = {f"evse_board_support/{e['name']}" for e in errors["errors"]}
    assert listed <= set(ERROR_EFFECTS)
