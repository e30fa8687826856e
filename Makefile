# The two commands of the README. Both set everything up first (idempotent).
.PHONY: setup test campaign lint node
TIME ?= 10m

setup:
	./scripts/setup.sh

# the tests include campaigns on a Ray cluster (tests/test_ray.py): Ray is installed for them
test:
	EXTRAS=dev,ray ./scripts/setup.sh
	.venv/bin/python -m pytest -q -ra

campaign: setup
	.venv/bin/iommufd-fuzz fuzz --time $(TIME)

# a worker node of a Ray cluster: Ray, qemu and the guest's tools; the kernel comes from the head
node:
	EXTRAS=dev,ray SKIP_KERNEL=1 ./scripts/setup.sh

lint:
	.venv/bin/ruff check fuzz tests bench
