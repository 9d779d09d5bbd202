"""The business core: pure, synchronous, typed. No Faust, no Kafka, no I/O."""
