"""The benchmark harness (bench/README.md): `make bench N=1000`."""
