"""Fuzzing engines. Both share the program IR, the executor and the oracle."""
