"""docs/ocpp16-configuration.md is generated from the key table and must be current; the table is sane."""

from __future__ import annotations

from pathlib import Path

from everpy.ocpp.v16.config_keys import KEYS, Access, KeyType, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "ocpp16-configuration.md"


def test_doc_is_generated_from_the_table():
    assert DOC.read_text() == render_markdown(), "regenerate: python -m everpy.ocpp.v16.config_keys > " + str(DOC)


def test_every_default_is_valid_and_names_are_unique():
    assert len({key.name for key in KEYS}) == len(KEYS)
    for key in KEYS:
        if key.access is not Access.WRITE_ONLY:
            assert key.validate(key.default), key.name


def test_types_are_checked():
    by_name = {key.name: key for key in KEYS}
    assert by_name["HeartbeatInterval"].type is KeyType.INT
    assert not by_name["HeartbeatInterval"].validate("ten")
    assert not by_name["LocalPreAuthorize"].validate("yes") and by_name["LocalPreAuthorize"].validate("TRUE")
    assert by_name["ConnectorPhaseRotation"].validate("0.RST,1.RTS")
    assert not by_name["ConnectorPhaseRotation"].validate("1.XYZ")
    assert not by_name["MeterValuesSampledData"].validate(",".join(["Voltage"] * 13))  # more than MaxLength
    assert not by_name["AuthorizationKey"].validate("short")
