"""shopsim shoppers for Locust: open-model arrivals from a scenario, replayed by a user pool.

Run it with the plain Locust CLI or web UI (``shopsim load`` runs exactly this file)::

    locust -f locustfiles/shoppers.py --host http://127.0.0.1:8085 \\
        --scenario scenarios/d2c_cart_recovery.yaml --api pipelines --speed 60 --users 20

Every shopsim option (``--scenario``, ``--api``, ``--speed``, ``--seed``, ``--shoppers``, ...)
also reads a ``LOCUST_*`` environment variable; see generator/load/plugin.py.
"""

import locust  # first: Locust monkey-patches the standard library with gevent on import

from generator.load.plugin import install
from generator.load.users import ShopperUser

install(locust.events)

__all__ = ["ShopperUser"]
