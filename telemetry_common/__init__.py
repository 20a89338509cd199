"""Code shared by the producer API and the consumer worker.

`contract` holds what both services must agree on (the reading model, the Kafka
record encoding, the Redis key layout); the other modules hold plumbing both
services use (connection settings, logging). Neither service imports the other.
"""
