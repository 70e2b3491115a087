"""Wires order changes to the notifications service (see notifications.services)."""
