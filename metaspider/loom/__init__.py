"""Meta-Loom: data sets and topics, collect, train, eval, calibrate, and the selective-prediction metrics."""
