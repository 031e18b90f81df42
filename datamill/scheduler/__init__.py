"""Deciding where and when a call goes: routing, limits, circuit breakers."""
