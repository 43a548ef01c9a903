"""The suite's options, fixtures and hooks: the plugin ``mmdet_opt.suite.plugin``."""
pytest_plugins = ["mmdet_opt.suite.plugin"]
