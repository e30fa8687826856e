"""Running programs on a real kernel: encode on the host, execute in C in the guest."""
