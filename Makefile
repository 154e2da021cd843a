# Shortcuts for machines that have make; ./run is the entry point (fresh images lack make).
.PHONY: rollout test lint pytest molecule
rollout:
	./run rollout
test:
	./run test
lint:
	./run test lint
pytest:
	./run test pytest
molecule:
	./run test molecule
