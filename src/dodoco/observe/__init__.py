"""Observe routing: hooks that record it on the device (``capture``), and the runner over conditions.

``dodoco.observe(...)`` is the runner (``dodoco.observe.runner.observe``). This package is also
reachable as ``dodoco.observe`` once a submodule is imported, which would hide the function of the
same name; the package module is therefore callable and forwards to the runner.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from dodoco.observe.runner import observe

        return observe(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
