"""What pyproject.toml cannot say: the repository's ``examples/`` folder ships inside the wheel as the
package ``framework._examples`` (read by ``amlstep init``), from where it is, without a copy."""

from setuptools import find_namespace_packages, setup

EXAMPLES = "framework._examples"
# its importable folders too (titanic, penguins...): setuptools warns about folders it is not told of
examples = [f"{EXAMPLES}.{name}" for name in find_namespace_packages(where="examples")
            if all(part.isidentifier() for part in name.split("."))]

setup(packages=[*find_namespace_packages(include=["framework*", "plugins*", "emulator*"]), EXAMPLES, *examples],
      package_dir={EXAMPLES: "examples"})
