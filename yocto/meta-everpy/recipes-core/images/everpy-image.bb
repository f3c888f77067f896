SUMMARY = "Charger main-board image running everpy"
DESCRIPTION = "A console image with systemd, mosquitto and everpy, configured as the main board \
               (OCPP connection, satellites' EVSEs proxied)."
HOMEPAGE = "https://github.com/everpy/everpy"
LICENSE = "MIT"

EVERPY_BOARD_CONFIG_PACKAGE = "everpy-config-main"

require everpy-image.inc
