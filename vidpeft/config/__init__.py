"""The run configuration: recipes (recipes.py), typed sections (train.py here, data in
vidpeft.data.config), the whole run (run.py), its command-line flags (flags.py) and the one
coercion table (values.py). Import the submodules: this package face stays empty so that
vidpeft.data can use values.py without an import circle."""
