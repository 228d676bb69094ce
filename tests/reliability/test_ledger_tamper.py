"""Every kind of ledger tampering is a LedgerIntegrityError naming the entry; `verify` lists it (exit 2) and
history, promote and rollback refuse to act. A missing final newline is not tampering; a legacy ledger
(written before the chain) keeps working and the chain starts at its next entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftgate.cli import main
from tasks.core.errors import LedgerIntegrityError, UnsafePathError
from tasks.registry.ledger import line_digest
from tasks.registry.local import LocalRegistry
from tasks.registry.model import ANCHOR_NAME, LEDGER_NAME, PRODUCTION
from tests.reliability.homes import MODEL, add_versions


def _ledger(tmp_path: Path) -> tuple[Path, LocalRegistry]:
    """Entries: #1-#4 register v0-v3 (v3 failed its gate), #5 promote v0, #6 promote v1, #7 promote v2."""
    home = tmp_path / "home"
    reg = LocalRegistry(home / "registry")
    add_versions(reg, 4, gate_failed=(3,))
    for version in ("v0", "v1", "v2"):
        reg.promote(MODEL, version, actor="gate", reason="passed")
    return home, reg


def _lines(reg: LocalRegistry) -> list[bytes]:
    return (reg.root / MODEL / LEDGER_NAME).read_bytes().splitlines(keepends=True)


def _write(reg: LocalRegistry, lines: list[bytes]) -> None:
    (reg.root / MODEL / LEDGER_NAME).write_bytes(b"".join(lines))


def _edit(line: bytes, change: Callable[[dict], None]) -> bytes:
    data = json.loads(line)
    change(data)
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _retarget(data: dict) -> None:
    data["moves"][0]["to"] = "v3"  # production onto the version that failed its gate


def _delete(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    _write(reg, lines[:4] + lines[5:])


def _reorder(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    _write(reg, [*lines[:4], lines[5], lines[4], *lines[6:]])


def _edit_reason(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    lines[4] = _edit(lines[4], lambda d: d.update(reason="nobody approved this"))
    _write(reg, lines)


def _retarget_middle(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    lines[5] = _edit(lines[5], _retarget)
    _write(reg, lines)


def _retarget_last(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    lines[-1] = _edit(lines[-1], _retarget)
    _write(reg, lines)


def _duplicate(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    _write(reg, [*lines[:5], lines[4], *lines[5:]])


def _truncate_tail(reg: LocalRegistry) -> None:
    _write(reg, _lines(reg)[:-1])


def _strip_prev(reg: LocalRegistry) -> None:
    lines = _lines(reg)
    lines[5] = _edit(lines[5], lambda d: d.pop("prev"))
    _write(reg, lines)


def _anchor_forward(reg: LocalRegistry) -> None:
    path = reg.root / MODEL / ANCHOR_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), "seq": 9}))


def _delete_anchor_and_tail(reg: LocalRegistry) -> None:
    _truncate_tail(reg)
    (reg.root / MODEL / ANCHOR_NAME).unlink()


TAMPERS = {
    # kind: (how, the entry the error names)
    "delete a line": (_delete, 6),
    "reorder two lines": (_reorder, 6),
    "edit a field": (_edit_reason, 6),
    "retarget production (middle) to a gate-failed version": (_retarget_middle, 7),
    "retarget production (last line) to a gate-failed version": (_retarget_last, 7),
    "duplicate a line (duplicate seq)": (_duplicate, 5),
    "truncate the tail (anchor mismatch)": (_truncate_tail, 7),
    "strip prev from an entry": (_strip_prev, 6),
    "anchor moved forward": (_anchor_forward, 9),
    "delete the tail and the anchor": (_delete_anchor_and_tail, None),
}


@pytest.mark.parametrize("kind", list(TAMPERS))
def test_every_tamper_kind_is_detected_and_every_command_refuses(tmp_path: Path, kind: str) -> None:
    home, reg = _ledger(tmp_path)
    tamper, seq = TAMPERS[kind]
    tamper(reg)
    before = (reg.root / MODEL / LEDGER_NAME).read_bytes()
    with pytest.raises(LedgerIntegrityError) as caught:
        reg.aliases(MODEL)
    assert caught.value.seq == seq, str(caught.value)
    if seq is not None:
        assert f"entry #{seq}:" in str(caught.value)
    problems = reg.check(MODEL)
    assert problems and all("\n" not in p for p in problems)
    for refused in (
        lambda: reg.rollback(MODEL, actor="ops", reason="try"),
        lambda: reg.promote(MODEL, "v1", actor="ops", reason="try"),
        lambda: reg.note(MODEL, "audit", actor="ops", reason="try"),
    ):
        with pytest.raises(LedgerIntegrityError):
            refused()
    assert (reg.root / MODEL / LEDGER_NAME).read_bytes() == before  # nothing written, nothing "repaired"
    runner = CliRunner()
    commands = [["verify"], ["history"]]
    if kind == "edit a field":  # every command, once (each opens a workspace: seconds on a loaded machine)
        commands += [["rollback", "--no-flow"], ["withdraw"], ["promote", "v1"]]
    for command in commands:
        result = runner.invoke(main, [*command, "--home", str(home), "--model", MODEL])
        assert result.exit_code == 2, (command, result.output)
    verified = runner.invoke(main, ["verify", "--home", str(home), "--model", MODEL])
    assert verified.output.count("problem: ") == len(problems)


def test_a_complete_last_line_without_its_newline_is_read_and_never_reused(tmp_path: Path) -> None:
    home, reg = _ledger(tmp_path)
    path = reg.root / MODEL / LEDGER_NAME
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert reg.aliases(MODEL)[PRODUCTION] == "v2" and reg.check(MODEL) == []
    entry = reg.rollback(MODEL, actor="ops", reason="after an editor dropped the newline")
    assert entry.seq == 8
    lines = _lines(reg)
    assert len(lines) == 8 and all(line.endswith(b"\n") for line in lines)
    assert json.loads(lines[-1])["prev"] == line_digest(lines[-2])
    assert reg.check(MODEL) == []
    assert CliRunner().invoke(main, ["verify", "--home", str(home), "--model", MODEL]).exit_code == 0


def test_a_torn_last_line_is_the_only_thing_repaired(tmp_path: Path) -> None:
    _home, reg = _ledger(tmp_path)
    path = reg.root / MODEL / LEDGER_NAME
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"seq":8,"at":"2026-')
    assert reg.aliases(MODEL)[PRODUCTION] == "v2" and reg.check(MODEL) == []
    assert reg.rollback(MODEL, actor="ops", reason="after a crash").seq == 8
    assert path.read_bytes().startswith(intact) and reg.check(MODEL) == []


def test_a_legacy_ledger_still_opens_and_the_chain_starts_at_its_next_entry(tmp_path: Path) -> None:
    home, reg = _ledger(tmp_path)
    legacy = [_edit(line, lambda d: d.pop("prev")) for line in _lines(reg)]  # what the old writer wrote
    _write(reg, legacy)
    (reg.root / MODEL / ANCHOR_NAME).unlink()
    assert reg.aliases(MODEL)[PRODUCTION] == "v2" and reg.check(MODEL) == []
    runner = CliRunner()
    assert runner.invoke(main, ["history", "--home", str(home), "--model", MODEL]).exit_code == 0
    entry = reg.rollback(MODEL, actor="ops", reason="first chained entry")
    assert entry.seq == 8
    first_chained = json.loads(_lines(reg)[-1])
    assert first_chained["prev"] == line_digest(legacy[-1])  # the chain starts by digesting the last legacy line
    reg.promote(MODEL, "v2", actor="ops", reason="second chained entry")
    assert reg.check(MODEL) == []
    assert runner.invoke(main, ["verify", "--home", str(home), "--model", MODEL]).exit_code == 0
    # From the chain's start on, an unchained line is tampering.
    lines = _lines(reg)
    lines[-1] = _edit(lines[-1], lambda d: d.pop("prev"))
    _write(reg, lines)
    with pytest.raises(LedgerIntegrityError, match="entry #9"):
        reg.aliases(MODEL)


def test_writes_through_a_symlink_out_of_the_home_are_refused(tmp_path: Path) -> None:
    _home, reg = _ledger(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ledger = reg.root / MODEL / LEDGER_NAME
    (outside / LEDGER_NAME).write_bytes(ledger.read_bytes())
    ledger.unlink()
    ledger.symlink_to(outside / LEDGER_NAME)
    with pytest.raises(UnsafePathError, match=LEDGER_NAME):
        reg.rollback(MODEL, actor="ops", reason="through a symlink")
    other = LocalRegistry(tmp_path / "other-registry")
    (other.root).mkdir(parents=True)
    (other.root / MODEL).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the registry home"):
        add_versions(other, 1)


def test_scoring_and_the_drill_refuse_a_broken_chain(tmp_path: Path) -> None:
    from tasks.resources.workspace import open_workspace
    from tasks.stages.canary import resolve_routing
    from tasks.stages.drill import run_drill
    from tests.reliability.homes import fake_home

    home = fake_home(tmp_path / "home", 4)  # entries #1-#4; the promotions are #5 and #6
    reg = home.registry
    reg.promote(MODEL, "v0", actor="gate", reason="first")
    reg.promote(MODEL, "v1", actor="gate", reason="second")
    _edit_reason(reg)
    ws = open_workspace(home.settings)
    try:
        with pytest.raises(LedgerIntegrityError, match="entry #6"):
            resolve_routing(ws)  # what `driftgate score` does before it reads a row
        with pytest.raises(LedgerIntegrityError, match="entry #6"):
            run_drill(ws)
    finally:
        ws.close()
    assert not (home.settings.home / "drills").exists() or not any((home.settings.home / "drills").iterdir())
