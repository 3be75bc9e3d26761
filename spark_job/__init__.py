"""The chaosbed Spark Structured Streaming job: Kafka -> idempotent PostgreSQL sink."""
