# Lets mosquitto read drop-ins from /etc/mosquitto/conf.d (everpy installs its loopback-only listener
# there). Applies only with the "everpy-os" override (DISTRO = "everpy-os", or DISTROOVERRIDES .= ":everpy-os"),
# so adding this layer changes nothing for other distros (Yocto Project Compatible rule).

do_install:append:everpy-os() {
    install -d ${D}${sysconfdir}/mosquitto/conf.d
    if ! grep -q '^include_dir ' ${D}${sysconfdir}/mosquitto/mosquitto.conf; then
        printf '\n# Drop-ins (everpy: loopback-only module bus)\ninclude_dir %s\n' \
            "${sysconfdir}/mosquitto/conf.d" >> ${D}${sysconfdir}/mosquitto/mosquitto.conf
    fi
}

FILES:${PN}:append:everpy-os = " ${sysconfdir}/mosquitto/conf.d"
