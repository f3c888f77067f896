SUMMARY = "Python framework for EV charger controller firmware (EVerest-compatible)"
DESCRIPTION = "everpy loads a graph of charger modules (EVSE manager, OCPP, power meter, \
               authorisation, ...) from an EVerest-format YAML config; the modules talk over \
               the board's local MQTT broker. Runs as everpy.service (systemd notify + watchdog)."
HOMEPAGE = "https://github.com/everpy/everpy"
BUGTRACKER = "https://github.com/everpy/everpy/issues"
SECTION = "console/utils"
CVE_PRODUCT = "everpy"
LICENSE = "Apache-2.0"
# tests/yocto checks this checksum against the tree.
LIC_FILES_CHKSUM = "file://LICENSE;md5=a291c7acd90a71d52ac3e0c9e5f74c66"

PV .= "+git"

# Pinned source: EVERPY_SRCREV names the everpy commit to build (see the layer README). It must be a
# full commit hash; AUTOREV is not used because it makes even an offline parse contact the server.
EVERPY_GIT_URI ??= "git://github.com/everpy/everpy.git;protocol=https;branch=main"
EVERPY_SRCREV ??= "0123456789abcdef0123456789abcdef01234567"

SRC_URI = "${EVERPY_GIT_URI};destsuffix=${BP} \
           file://everpy.service \
           file://journald-everpy.conf \
           file://mosquitto-everpy.conf \
"
SRCREV = "${EVERPY_SRCREV}"

inherit python_setuptools_build_meta systemd useradd

# The service runs as its own system user (everpy.service: User=everpy); serial ports through dialout.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/everpy --no-create-home --shell /sbin/nologin --user-group everpy"
GROUPMEMS_PARAM:${PN} = "--add everpy --group dialout"

SYSTEMD_SERVICE:${PN} = "everpy.service"

do_install:append:class-target() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/everpy.service ${D}${systemd_system_unitdir}/everpy.service

    install -d ${D}${systemd_unitdir}/journald.conf.d
    install -m 0644 ${UNPACKDIR}/journald-everpy.conf ${D}${systemd_unitdir}/journald.conf.d/50-everpy.conf

    install -d ${D}${sysconfdir}/mosquitto/conf.d
    install -m 0644 ${UNPACKDIR}/mosquitto-everpy.conf ${D}${sysconfdir}/mosquitto/conf.d/everpy.conf

    # The board's run config comes from an everpy-config-* package; the directory belongs to everpy.
    install -d ${D}${sysconfdir}/everpy
    install -d -m 0750 -o everpy -g everpy ${D}${localstatedir}/lib/everpy
    # /var/log/everpy is not packaged: /var/log may be a symlink to volatile storage (the default
    # outside the everpy-os distro); the unit's LogsDirectory= creates it at start.
}

FILES:${PN} += "\
    ${localstatedir}/lib/everpy \
    ${sysconfdir}/everpy \
    ${sysconfdir}/mosquitto/conf.d/everpy.conf \
    ${systemd_unitdir}/journald.conf.d \
"
CONFFILES:${PN} += "${sysconfdir}/mosquitto/conf.d/everpy.conf"

# python3-modules is the whole standard library: rarely used paths (diagnostics upload over FTP, log
# archives, the OCPP SQLite store, TLS) must not hit a missing stdlib package on a charger in the field.
RDEPENDS:${PN} = "\
    mosquitto \
    python3-aiohttp \
    python3-cryptography \
    python3-ifaddr \
    python3-jsonschema \
    python3-modules \
    python3-msgpack \
    python3-ocpp \
    python3-paho-mqtt \
    python3-pluggy \
    python3-pymodbus \
    python3-pyserial \
    python3-pyyaml \
    python3-websockets \
    python3-zeroconf \
"

# everpy-native exists only to validate board configs at build time (everpy-config.inc); `everpy check`
# needs the loader's dependencies and nothing of the bus, OCPP, Modbus or mDNS stacks
# (tests/yocto checks this list against what `everpy check` really imports).
RDEPENDS:${PN}:class-native = "\
    python3-jsonschema-native \
    python3-pluggy-native \
    python3-pyyaml-native \
"

BBCLASSEXTEND = "native"
