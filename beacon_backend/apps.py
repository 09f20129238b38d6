from django.apps import AppConfig


class BeaconBackendConfig(AppConfig):
    name = "beacon_backend"
    label = "beacon"
    verbose_name = "Beacon reference backend"
