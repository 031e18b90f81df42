"""The server's event stream: what changed, published by the process where it changed.

`EventPublisher` (one per process) writes events to the store, coalesced; `EventHub` (one per
API process) reads each new event once and fans it out to every `GET /api/events` client;
`DeploymentMonitor` publishes the deployments' live state. See docs/architecture.md.
"""

from datamill.events.hub import EventFilter, EventHub
from datamill.events.publisher import EventPublisher
from datamill.events.topics import Topic

__all__ = ["EventFilter", "EventHub", "EventPublisher", "Topic"]
