"""Lazy public names of a package (PEP 562), each listed once.

A package's `__init__` lists its public names by the module that defines
them; they load on first use, so that `import tfdistill` and the command
line start without TensorFlow. `tfdistill` itself offers every package's
names (`tfdistill.Distiller`, `tfdistill.export_student`, ...).
"""

import importlib


def lazy_exports(package: str, modules: dict) -> tuple:
  """(`__getattr__`, `__dir__`, `__all__`) for `package`.

  Args:
    package: The package's `__name__`.
    modules: {submodule name: public names it defines}.
  """
  where = {name: f"{package}.{module}" for module, names in modules.items()
           for name in names}
  if len(where) != sum(len(names) for names in modules.values()):
    raise ValueError(f"{package} lists a public name twice.")

  def __getattr__(name):  # pylint: disable=invalid-name
    if name not in where:
      raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where[name]), name)
    setattr(importlib.import_module(package), name, value)
    return value

  def __dir__():  # pylint: disable=invalid-name
    return sorted(set(vars(importlib.import_module(package))) | set(where))

  return __getattr__, __dir__, sorted(where)
