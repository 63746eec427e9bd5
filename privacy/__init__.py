"""Personal data: erasure and export of a customer, retention of raw webhook payloads (issue #20)."""
