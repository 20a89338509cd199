"""The producer API: validates memory readings and publishes them to Kafka."""
