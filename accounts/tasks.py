"""Celery tasks for accounts. Thin: take an id, call the function that does the work."""

from smtplib import SMTPException

from celery import shared_task
from django.db import DatabaseError

from accounts.password_reset import password_reset_email


@shared_task(
    acks_late=True,
    autoretry_for=(DatabaseError, SMTPException, OSError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=6,
)
def password_reset_email_send(user_id: int) -> None:
    # Run twice (a killed worker's late ack), it sends a second link; both work until one is used.
    password_reset_email(user_id=user_id)
