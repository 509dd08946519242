"""Everything that speaks AMQP: connection, topology, confirmed publishing, the consume loop."""
