"""Notifications through the providers' notifiers: SNS, email (SMTP) and Slack incoming webhooks.

The configuration's ``monitor.notify`` targets name the connections only; each notifier reads its
credentials from its Airflow connection when it sends. Task failures reach the targets that hear
``failure`` through ``on_failure_callback``; lag breaches, quarantined changes and their end are sent by
the monitor DAG.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseNotifier

from dynamo2mongo.config import MonitorConfig, NotifyTarget

log = logging.getLogger(__name__)

# SNS refuses subjects over 100 characters.
SUBJECT_LIMIT = 100
# Rendered by the notifier for each failure, with the failed task's context.
FAILURE_SUBJECT = (
    "{{ ('dynamo2mongo ' ~ dag.dag_id ~ ': ' ~ ti.task_id ~ ' failed') | truncate(%d, true, '...', 0) }}" % SUBJECT_LIMIT
)
FAILURE_TEXT = (
    "Task {{ ti.task_id }}{% if ti.map_index is not none and ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %} "
    "of {{ dag.dag_id }} failed in run {{ run_id }} (try {{ ti.try_number }}): {{ exception }}\n"
    "Log: {{ ti.log_url }}\n"
    "Every task is safe to clear; see docs/runbook.md for this task."
)


def _raw(text: str) -> str:
    """A message the notifier must not render as a template (it may hold braces from an error)."""
    return "{% raw %}" + text.replace("{% endraw %}", "") + "{% endraw %}"


def notifier(target: NotifyTarget, subject: str, text: str, template: bool = False) -> BaseNotifier:
    """A notifier for ``target``; ``subject`` and ``text`` are Jinja templates when ``template`` is set,
    else sent as they are."""
    if target.kind == "email":
        # Escaped for HTML: an error message may hold '<' or '&'.
        body = text.replace(" }}", " | e }}") if template else _raw(html.escape(text))
        return SmtpNotifier(to=list(target.to), from_email=target.from_email,
                            subject=subject if template else _raw(subject),
                            html_content=f"<pre>{body}</pre>", smtp_conn_id=target.smtp_conn_id)
    if not template:
        subject, text = _raw(subject), _raw(text)
    if target.kind == "sns":
        return SnsNotifier(aws_conn_id=target.aws_conn_id, target_arn=target.topic_arn, subject=subject,
                           message=text, region_name=target.region)
    return SlackWebhookNotifier(slack_webhook_conn_id=target.slack_webhook_conn_id, text=f"*{subject}*\n{text}")


def failure_callbacks(monitor: MonitorConfig, table: str) -> list[BaseNotifier]:
    """``on_failure_callback`` of a table's tasks: one notifier per target that hears failures."""
    return [notifier(t, FAILURE_SUBJECT, FAILURE_TEXT, template=True) for t in monitor.targets("failure", table)]


def send(monitor: MonitorConfig, event: str, table: str, subject: str, text: str, context: Any) -> list[str]:
    """Send one event to every target that hears it; a target that fails does not stop the others.

    Returns the failures, one line each (kind and error), for the caller to report.
    """
    failures = []
    for target in monitor.targets(event, table):
        try:
            notifier(target, subject[:SUBJECT_LIMIT], text)(context)
        except Exception as error:
            log.exception("notifying %s of %s for %s failed", target.kind, event, table)
            failures.append(f"{target.kind}: {type(error).__name__}: {error}")
    return failures
