"""``resultstore-encryption-keygen`` prints pairs that the keys variable accepts."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from resultstore_encryption import KEYS_ENV, parse_keys
from resultstore_encryption.cli import main


def test_keygen_prints_a_parseable_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--id", "2025-11"]) == 0
    out, err = capsys.readouterr()
    ring = parse_keys(out.strip(), source=KEYS_ENV)
    assert ring.ids == ("2025-11",)
    assert len(ring.active.secret) == 32
    assert KEYS_ENV in err
    assert out.strip().partition(":")[2] not in err


def test_keygen_default_ids_differ(capsys: pytest.CaptureFixture[str]) -> None:
    main([])
    main([])
    lines = capsys.readouterr().out.split()
    kids = [line.partition(":")[0] for line in lines]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}\.[0-9a-f]{4}", kid) for kid in kids)
    keys = [line.partition(":")[2] for line in lines]
    assert keys[0] != keys[1]


def test_keygen_refuses_a_bad_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--id", "has space"])
    assert info.value.code == 2
    assert "key id 'has space' is not valid" in capsys.readouterr().err


def test_keygen_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "resultstore_encryption.cli", "--id", "k"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert parse_keys(done.stdout.strip(), source=KEYS_ENV).ids == ("k",)
