SUMMARY = "everpy charger runtime with its local MQTT broker"
DESCRIPTION = "Everything an everpy board runs besides its config: the everpy runtime and modules, \
               the mosquitto broker for the module bus and the MQTT command-line clients for service work."
HOMEPAGE = "https://github.com/everpy/everpy"
LICENSE = "MIT"

inherit packagegroup

RDEPENDS:${PN} = "\
    everpy \
    mosquitto \
"
RRECOMMENDS:${PN} = "mosquitto-clients"
