EVERPY_BOARD = "main"
EVERPY_BOARD_CONFIG = "main.yaml"

require everpy-config.inc

RCONFLICTS:${PN} = "everpy-config-satellite"
