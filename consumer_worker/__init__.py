"""The consumer worker: moves readings from Kafka into Redis."""
