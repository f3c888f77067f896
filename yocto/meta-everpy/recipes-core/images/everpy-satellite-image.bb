SUMMARY = "Charger satellite-board image running everpy"
DESCRIPTION = "The main-board image with the satellite's config: the main board drives this \
               board's EVSE over everpy's RPC link."
HOMEPAGE = "https://github.com/everpy/everpy"
LICENSE = "MIT"

EVERPY_BOARD_CONFIG_PACKAGE = "everpy-config-satellite"

require everpy-image.inc
