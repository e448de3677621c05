"""The command and reply payloads: JSON Schemas, examples and the code agree.

Valid examples pass the schema (and a reply the commander's decoder); invalid ones fail
both. A command as the commander builds it passes its schema.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from services.core.contracts import ContractError, Reason, load_schema
from services.protocols.commands import (
    command_payload,
    decode_reply,
    parse_correlation,
    reply_topic,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "services/core/schemas/command-examples"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _examples(label: str) -> list[tuple[str, Path]]:
    return sorted((p.parts[-3], p) for p in EXAMPLES.glob(f"*/{label}/*.json"))


def test_both_contracts_have_valid_and_invalid_examples() -> None:
    for name in ("command", "command-reply"):
        for label in ("valid", "invalid"):
            assert any((EXAMPLES / name / label).glob("*.json")), (name, label)


@pytest.mark.parametrize(("name", "path"), _examples("valid"), ids=lambda v: str(v)[-40:])
def test_valid_examples_pass(name: str, path: Path) -> None:
    _validator(name).validate(orjson.loads(path.read_bytes()))
    if name == "command-reply":
        decode_reply(path.read_bytes())


@pytest.mark.parametrize(("name", "path"), _examples("invalid"), ids=lambda v: str(v)[-40:])
def test_invalid_examples_fail(name: str, path: Path) -> None:
    assert list(_validator(name).iter_errors(orjson.loads(path.read_bytes()))), path.name
    if name == "command-reply":
        with pytest.raises(ContractError) as exc:
            decode_reply(path.read_bytes())
        assert exc.value.reason is Reason.SCHEMA


def test_the_commanders_payload_passes_the_command_schema() -> None:
    cid = str(uuid.uuid4())
    to = reply_topic("f5g/v1", "p1", "press", "n1")
    payload = command_payload(cid, "stop", {"a": 1}, datetime.now(UTC), to)
    _validator("command").validate(orjson.loads(payload))


def test_reply_decoder_refusals() -> None:
    with pytest.raises(ContractError) as exc:
        decode_reply(b'{"status": ')
    assert exc.value.reason is Reason.INVALID_JSON
    with pytest.raises(ContractError) as exc:
        decode_reply(orjson.dumps({"status": "failed", "message": "x" * 1001}))
    assert exc.value.reason is Reason.SCHEMA
    for bad in (None, b"", b"not-a-uuid", b"\xff"):
        with pytest.raises(ContractError) as exc:
            parse_correlation(bad)
        assert exc.value.reason is Reason.UNKNOWN_COMMAND
