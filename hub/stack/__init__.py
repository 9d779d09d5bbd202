"""The local stack: PostgreSQL, Kafka (KRaft) and Kafka Connect with Debezium, as local processes."""
