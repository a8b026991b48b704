"""PyLabs appliance: the application layer (config, runner, OSIS, app server, enrollment).

Protocol servers live in ``netservices`` and know nothing of this package.
"""

__version__ = "0.1.0"
