"""The contract suite's own tests run the suite itself through pytester."""

pytest_plugins = ["pytester"]
