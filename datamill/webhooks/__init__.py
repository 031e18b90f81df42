"""Signed webhooks (Standard Webhooks): endpoints per project, messages made from the event
stream, delivered with retries by a side task, and a delivery log with replay."""
