"""SecurityCtrlr: the security profile, Basic-auth password, identity and certificate limits (OCPP 2.0.1
Part 2, Appendix 3; functional blocks A and M)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables.kinds import RW, R, W, integer, ref, string

SECURITY = "SecurityCtrlr"

DEFINITIONS: tuple[Variable, ...] = (
    string(SECURITY, "BasicAuthPassword", None, "Password of HTTP Basic authentication (security profiles 1 and"
           " 2); write-only", mutability=W, min_length=16, max_length=40),
    integer(SECURITY, "SecurityProfile", 0, "The security profile of the connection in use", mutability=R,
            min_limit=0, max_limit=3, persistent=False),
    string(SECURITY, "Identity", None, "The station's identity at the CSMS (last segment of the URL)",
           mutability=R, max_length=48, persistent=False),
    string(SECURITY, "OrganizationName", "everpy", "Organisation (O) of the station certificate's subject",
           mutability=RW, max_length=64),
    integer(SECURITY, "CertificateEntries", 0, "Installed certificates", mutability=R, min_limit=0,
            persistent=False),
    integer(SECURITY, "MaxCertificateChainSize", 10000, "Largest certificate chain accepted, in bytes",
            mutability=R, min_limit=1, max_limit=10000),
    integer(SECURITY, "CertSigningWaitMinimum", 60, "Seconds to wait for CertificateSigned before resending"
            " SignCertificate (doubling each time)", unit="s", min_limit=1, max_limit=86400),
    integer(SECURITY, "CertSigningRepeatTimes", 3, "How often SignCertificate is resent without an answer",
            min_limit=0, max_limit=10),
)

BASIC_AUTH_PASSWORD = ref(DEFINITIONS, SECURITY, "BasicAuthPassword")
SECURITY_PROFILE = ref(DEFINITIONS, SECURITY, "SecurityProfile")
IDENTITY = ref(DEFINITIONS, SECURITY, "Identity")
ORGANIZATION_NAME = ref(DEFINITIONS, SECURITY, "OrganizationName")
CERTIFICATE_ENTRIES = ref(DEFINITIONS, SECURITY, "CertificateEntries")
MAX_CERTIFICATE_CHAIN_SIZE = ref(DEFINITIONS, SECURITY, "MaxCertificateChainSize")
CERT_SIGNING_WAIT_MINIMUM = ref(DEFINITIONS, SECURITY, "CertSigningWaitMinimum")
CERT_SIGNING_REPEAT_TIMES = ref(DEFINITIONS, SECURITY, "CertSigningRepeatTimes")
