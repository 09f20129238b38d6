"""The reference Beacon backend: Django + Channels, the fleet's default system under test.

Configuration comes from the environment (see :mod:`beacon_backend.config`), so that every server
process of one deployment, and the provisioning command, agree on the database, the channel layer
and the token secret.
"""
