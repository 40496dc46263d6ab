"""pytest settings of the GPU tests (tests/gpu/run_device.sh)."""


def pytest_configure(config):
    # pytest-xdist's mark (run_device.sh runs the tests in several processes when it
    # can install it): cases of one group run in one process, one after the other
    config.addinivalue_line("markers", "xdist_group(name): run these cases in one pytest-xdist worker")
