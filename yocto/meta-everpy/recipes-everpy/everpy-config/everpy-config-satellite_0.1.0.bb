EVERPY_BOARD = "satellite"
EVERPY_BOARD_CONFIG = "satellite.yaml"

require everpy-config.inc

RCONFLICTS:${PN} = "everpy-config-main"
