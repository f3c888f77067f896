SUMMARY = "Open Charge Point Protocol (OCPP 1.6, 2.0.1, 2.1) for Python"
DESCRIPTION = "Python implementation of the Open Charge Point Protocol: typed call and result \
               payloads with JSON schema validation, and a charge point / central system base \
               class on asyncio."
HOMEPAGE = "https://github.com/mobilityhouse/ocpp"
BUGTRACKER = "https://github.com/mobilityhouse/ocpp/issues"
SECTION = "devel/python"
CVE_PRODUCT = "mobilityhouse:ocpp"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=357da596bd4bc9004894e2feaaa1e975"

SRC_URI[sha256sum] = "d29bfafb7161f75a78314f5cfd1b82fdf155082cd0f4de48c4dc8e5741422cf0"

inherit pypi python_poetry_core

# The sdist asks for poetry-core>=2.0; scarthgap ships 1.9, which builds this package correctly.
# Skip python-build's requirement check instead of carrying a second poetry-core.
PEP517_BUILD_OPTS = "--skip-dependency-check"

# Declares jsonschema>=4.23; scarthgap's 4.21.1 validates OCPP 1.6 and 2.0.1 payloads fine.
RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-json \
    python3-jsonschema \
    python3-logging \
"

BBCLASSEXTEND = "native nativesdk"
