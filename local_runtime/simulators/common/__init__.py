"""The kit every channel simulator is built on: ``switches`` (the misbehaviour switches),
``trades`` (the trade book and its statement), ``delivery`` (notifications with retries),
``server`` (the HTTP harness), ``pages`` (the buyer's page), ``sim_routes`` (``/_sim/...``)
and ``keys`` (RSA keys, signatures, random identifiers)."""
