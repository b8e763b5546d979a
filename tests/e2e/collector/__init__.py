# The collector end-to-end tests: a package, so that its modules (conftest included) do not
# collide with tests/e2e's modules of the same names.
