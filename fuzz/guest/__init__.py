"""Code that runs inside the VM."""
