# The two commands of the README. Both set everything up first (idempotent).
.PHONY: setup test campaign lint
TIME ?= 10m

setup:
	./scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q -ra

campaign: setup
	.venv/bin/iommufd-fuzz fuzz --time $(TIME)

lint:
	.venv/bin/ruff check fuzz tests bench
