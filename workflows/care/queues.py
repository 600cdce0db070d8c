"""Task queues by what their work calls, so a slow or rate-limited EHR cannot hold back timers,
care-team actions or messages.

Workflow tasks (timers, updates, signals) and the activities that only touch the app database run
on the deployment's task queue (TEMPORAL_TASK_QUEUE); EHR activities and messaging activities each
have a queue of their own, named from it. A workflow reads the name from the queue it runs on, so
deployments configure one base name and the derivation is the same on every replay.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio import workflow


class QueueKind(StrEnum):
    WORKFLOWS = "workflows"  # workflow tasks, the ledger, decision triggers
    EHR = "ehr"  # every call to the EHR over FHIR: verification, the Task mirror, detection
    MESSAGING = "messaging"  # messages to people: staff notices (SMS and email to come)


def queue_name(base: str, kind: QueueKind) -> str:
    """The task queue of a kind of work in a deployment whose task queue is `base`."""
    return base if kind == QueueKind.WORKFLOWS else f"{base}-{kind.value}"


def ehr() -> str:
    """The EHR activities' queue, for an activity call made in a workflow."""
    return queue_name(workflow.info().task_queue, QueueKind.EHR)


def messaging() -> str:
    """The messaging activities' queue, for an activity call made in a workflow."""
    return queue_name(workflow.info().task_queue, QueueKind.MESSAGING)


def workflow_queue(task_queue: str) -> str:
    """The deployment's own task queue, from the name of any of its queues (an activity that
    starts workflows starts them there, where the workflow workers poll)."""
    for kind in (QueueKind.EHR, QueueKind.MESSAGING):
        if task_queue.endswith(f"-{kind.value}"):
            return task_queue.removesuffix(f"-{kind.value}")
    return task_queue
