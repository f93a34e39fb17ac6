"""The notification dead-letter queue: webhooks SQS parked after their last retry.

Moving one back is send-then-delete, so a crash between the two leaves a twin, never a loss;
receivers dedupe on ``webhook-id`` (the event id), which the twin shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from paycore.aws import client
from paycore.config import get_settings
from paycore.dal.notification_queue import afresh

# SQS answers at most 10 messages per ReceiveMessage and takes at most 10 per batch call.
BATCH_LIMIT = 10
# A message taken for a move stays hidden this long; if the move fails it comes back.
_MOVE_VISIBILITY_SECONDS = 60


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receipt_handle: str


def _dead_letter_queue_url() -> str:
    url = get_settings().dead_letter_queue_url
    if not url:
        raise RuntimeError("DEAD_LETTER_QUEUE_URL is not set")
    return url


def receive_dead_letters(limit: int) -> list[DeadLetter]:
    """Take up to ``limit`` (at most 10) parked messages; an empty list when none are visible."""
    answer = client("sqs").receive_message(
        QueueUrl=_dead_letter_queue_url(),
        MaxNumberOfMessages=max(1, min(limit, BATCH_LIMIT)),
        VisibilityTimeout=_MOVE_VISIBILITY_SECONDS,
        # Long-poll briefly: a short poll may answer empty while messages are still parked.
        WaitTimeSeconds=1,
    )
    return [
        DeadLetter(message["MessageId"], message["Body"], message["ReceiptHandle"])
        for message in answer.get("Messages", [])
    ]


def requeue(dead_letters: list[DeadLetter]) -> int:
    """Send ``dead_letters`` (at most 10) to the notification queue as new messages (so every
    retry of the schedule applies again, the first at once), then delete those that were
    sent. Returns how many were sent; one that failed to send stays parked and reappears
    after a minute."""
    if not dead_letters:
        return 0
    sqs = client("sqs")
    sent = sqs.send_message_batch(
        QueueUrl=get_settings().notification_queue_url,
        Entries=[
            {"Id": str(index), "MessageBody": afresh(letter.body)}
            for index, letter in enumerate(dead_letters)
        ],
    ).get("Successful", [])
    moved = [dead_letters[int(entry["Id"])] for entry in sent]
    if moved:
        sqs.delete_message_batch(
            QueueUrl=_dead_letter_queue_url(),
            Entries=[
                {"Id": str(index), "ReceiptHandle": letter.receipt_handle}
                for index, letter in enumerate(moved)
            ],
        )
    return len(moved)
