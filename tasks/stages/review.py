"""What a reviewer sees before deciding "promote or not": the gate's evidence as Prefect artifacts, the exact
commands that answer a paused promotion, and the promotions still waiting for an answer.

A promotion that needs an approver pauses its flow run (flow mode) or stops at "awaiting-approval" (direct mode,
where nothing can pause). Either way the reviewer must not be blind: before the run pauses it carries the gate
report (images inline), the gate's rule table, links to the HTML report and to W&B when known, and the approve /
reject commands; ``driftgate pending`` lists what waits (``paused`` here for direct mode; the Prefect side is in
``flows.promote``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.verdicts import RuleResult, Verdict
from tasks.report.publish import artifact_key, publish, publish_link, publish_table, rules_table

if TYPE_CHECKING:
    from tasks.policy.decide import PolicyDecision
    from tasks.resources.workspace import Workspace

AWAITING_APPROVAL = "awaiting-approval"
# Registry annotations a tracking integration may set on a version: shown to the reviewer as links when present.
# (annotation, text, artifact kind)
WANDB_LINKS = (("wandb_run_url", "W&B run", "wandb-run"), ("wandb_report_url", "W&B report", "wandb-report"))


@dataclass(frozen=True)
class ApprovalCommands:
    """The two answers to a paused promotion, as an operator types them."""

    approve: str
    reject: str


def approval_commands(flow_run_id: str) -> ApprovalCommands:
    """The exact `driftgate approve` commands for a paused flow run (options as driftgate/cli.py names them)."""
    return ApprovalCommands(
        approve=f'driftgate approve {flow_run_id} --approver NAME --comment "why"',
        reject=f'driftgate approve {flow_run_id} --reject --approver NAME --comment "why"',
    )


@dataclass(frozen=True)
class GateEvidence:
    """What the gate left for a version: its report, rule verdicts, and where the HTML report and W&B pages are."""

    version: str
    report: str | None  # the gate report's markdown, images still linked by file name
    report_folder: Path | None  # where those images are
    rules: tuple[RuleResult, ...]
    html_report: str | None  # shareable path (or the whole path with share_absolute_paths)
    html_url: str | None  # file URL, only with share_absolute_paths
    links: tuple[tuple[str, str, str], ...]  # (text, URL, artifact kind): W&B run and report when known


def gate_evidence(ws: Workspace, version: str) -> GateEvidence:
    """Read a version's gate evidence from the registry (annotations and its gate.json); missing parts are None."""
    notes = ws.registry.annotations(ws.model, version)
    report_path = notes.get("gate_report")
    folder = html = url = None
    if isinstance(report_path, str):
        md = Path(report_path) if Path(report_path).is_absolute() else ws.settings.home / report_path
        folder = md.parent
        html_file = md.with_suffix(".html")
        if html_file.is_file():
            html = ws.settings.shareable(html_file)
            url = html_file.resolve().as_uri() if ws.settings.share_absolute_paths else None
    links = tuple((text, str(notes[key]), kind) for key, text, kind in WANDB_LINKS if notes.get(key))
    markdown = notes.get("gate_report_markdown")
    return GateEvidence(
        version=version,
        report=markdown if isinstance(markdown, str) else None,
        report_folder=folder,
        rules=_gate_rules(ws, version),
        html_report=html,
        html_url=url,
        links=links,
    )


def _gate_rules(ws: Workspace, version: str) -> tuple[RuleResult, ...]:
    from tasks.stages.retraining import GATE_FILE

    path = ws.registry.get(ws.model, version).path / GATE_FILE
    try:
        rules = json.loads(path.read_text()).get("rules", [])
    except (OSError, ValueError):  # a version registered without a gate file (e.g. forced): nothing to show
        return ()
    return tuple(
        RuleResult(
            rule=str(r["rule"]),
            verdict=Verdict(r["verdict"]),
            detail=str(r.get("detail", "")),
            blocking=bool(r.get("blocking", True)),
            numbers=dict(r.get("numbers") or {}),
        )
        for r in rules
    )


def publish_gate_evidence(ws: Workspace, version: str, *, flow_run_id: str | None = None) -> GateEvidence:
    """Publish a version's gate evidence as artifacts of the current flow run (a no-op outside one).

    With ``flow_run_id`` (a promotion about to pause) the markdown is an approval request: the approve/reject
    commands, the links, then the gate report. Without it (a retrain) only the rule table and the links go out:
    the retrain already published the report itself under ``gate-<model>-<version>``."""
    evidence = gate_evidence(ws, version)
    if flow_run_id is not None:
        publish(
            approval_markdown(ws, evidence, flow_run_id),
            key=artifact_key("approval", ws.model, version),
            description=f"{ws.model}:{version} awaits approval (flow run {flow_run_id})",
            images_from=evidence.report_folder,
        )
    publish_table(
        rules_table(evidence.rules),
        key=artifact_key("gate-rules", ws.model, version),
        description=f"gate rules of {ws.model}:{version}",
    )
    if evidence.html_url is not None:
        publish_link(
            evidence.html_url,
            text=f"gate report {version} (HTML)",
            key=artifact_key("gate-html", ws.model, version),
            description=f"self-contained HTML gate report of {ws.model}:{version}",
        )
    for text, url, kind in evidence.links:
        publish_link(
            url,
            text=f"{text} of {version}",
            key=artifact_key(kind, ws.model, version),
            description=f"{text} of {ws.model}:{version}",
        )
    return evidence


def approval_markdown(ws: Workspace, evidence: GateEvidence, flow_run_id: str) -> str:
    """The approval request: what waits, the two commands, where the full evidence is, then the gate report."""
    commands = approval_commands(flow_run_id)
    production = ws.registry.aliases(ws.model).get("production")
    lines = [
        f"# {ws.model}:{evidence.version} awaits approval",
        "",
        f"Production now: **{production or 'none'}**. Flow run `{flow_run_id}` is paused until an approver answers "
        "(the Resume form here, or the command line):",
        "",
        f"- approve: `{commands.approve}`",
        f"- reject: `{commands.reject}`",
    ]
    if evidence.html_report is not None:
        where = f"[{evidence.html_report}]({evidence.html_url})" if evidence.html_url else f"`{evidence.html_report}`"
        lines.append(f"- HTML report (plots inline): {where}" + ("" if evidence.html_url else " under the home"))
    lines += [f"- {text}: [{url}]({url})" for text, url, _kind in evidence.links]
    lines += ["", "---", ""]
    lines.append(evidence.report or f"_No gate report is recorded for {evidence.version}._")
    return "\n".join(lines) + "\n"


def publish_decision_rules(ws: Workspace, batch_id: str, decision: PolicyDecision) -> None:
    """A monitor decision's policy rules as a table artifact keyed by model and batch (a no-op outside a flow)."""
    publish_table(
        rules_table(decision.rules),
        key=artifact_key("monitor-rules", ws.model, batch_id),
        description=f"policy rules of {batch_id}: {decision.action.value}",
    )


# --- what waits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingApproval:
    """A promotion waiting for an approver: a paused flow run, or a direct-mode "awaiting-approval" outcome."""

    model: str | None
    version: str | None
    since: datetime | None
    flow_run_id: str | None  # None in direct mode: nothing paused, the promotion must be started again
    reason: str = ""

    def command(self) -> str:
        """What the operator runs next."""
        if self.flow_run_id is not None:
            commands = approval_commands(self.flow_run_id)
            return f"{commands.approve}  |  {commands.reject}"
        model = f" --model {self.model}" if self.model else ""
        return f"driftgate promote {self.version} --flow --require-approval{model}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "since": self.since.isoformat() if self.since else None,
            "flow_run_id": self.flow_run_id,
            "reason": self.reason,
            "command": self.command(),
        }


def awaiting_in_store(ws: Workspace) -> list[PendingApproval]:
    """Direct-mode promotions left "awaiting-approval" in the audit store and not settled since: the version's
    newest promotion row is still that outcome, and it holds no alias of a promotion under way or done."""
    from tasks.registry.model import CANARY, PRODUCTION, STAGING

    newest: dict[str, dict[str, Any]] = {}
    for row in ws.store.decisions(ws.model, kind="promotion"):
        if row.get("version"):
            newest[row["version"]] = row
    aliases = ws.registry.aliases(ws.model)
    moving = {aliases.get(a) for a in (STAGING, CANARY, PRODUCTION)}
    lease = ws.registry.open_lease(ws.model)
    if lease is not None:
        moving.add(lease.version)
    return [
        PendingApproval(ws.model, version, row.get("decided_at"), None, "; ".join(row.get("reasons") or ()))
        for version, row in newest.items()
        if row["outcome"] == AWAITING_APPROVAL and version not in moving
    ]
