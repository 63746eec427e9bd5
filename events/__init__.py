"""The outbox every aggregate writes to in its own transaction: event rows, the relay, the feed and replay."""
