"""AuthCtrlr, AuthCacheCtrlr and LocalAuthListCtrlr (OCPP 2.0.1 Part 2, Appendix 3; functional blocks C
and D)."""

from __future__ import annotations

from everpy.ocpp.v201.device_model import Variable
from everpy.ocpp.v201.variables.kinds import R, boolean, integer, option, ref, string

AUTH = "AuthCtrlr"
CACHE = "AuthCacheCtrlr"
LOCAL_LIST = "LocalAuthListCtrlr"

DEFINITIONS: tuple[Variable, ...] = (
    boolean(AUTH, "Enabled", True, "Authorization is required before charging"),
    boolean(AUTH, "AuthorizeRemoteStart", False, "A RequestStartTransaction's token is authorized first"),
    boolean(AUTH, "LocalAuthorizeOffline", True, "Offline, tokens of the cache or local list start charging"),
    boolean(AUTH, "LocalPreAuthorize", False, "Online, tokens valid in the cache or local list start at once"),
    string(AUTH, "MasterPassGroupId", None, "Tokens of this group may stop any transaction, never start one",
           max_length=36),
    boolean(AUTH, "OfflineTxForUnknownIdEnabled", False, "Offline, unknown tokens may start charging"),
    boolean(AUTH, "DisableRemoteAuthorization", False, "Never ask the CSMS; only the cache and local list"),
    boolean(CACHE, "Enabled", True, "The authorization cache is used"),
    boolean(CACHE, "DisablePostAuthorize", False,
            "Online, a token the cache holds as not Accepted is refused without asking the CSMS again"),
    integer(CACHE, "LifeTime", 86400, "Seconds an entry stays in the cache", unit="s", min_limit=1),
    option(CACHE, "Policy", "LRU", ("LRU",), "Which entries go first when the cache is full", mutability=R),
    integer(CACHE, "Storage", 1000, "Most entries in the cache", mutability=R, min_limit=1),
    boolean(LOCAL_LIST, "Enabled", True, "The local authorization list is used"),
    boolean(LOCAL_LIST, "DisablePostAuthorize", False,
            "Online, a token the local list holds as not Accepted is refused without asking the CSMS"),
    integer(LOCAL_LIST, "Entries", 0, "Entries in the local list", mutability=R, min_limit=0, persistent=False),
    integer(LOCAL_LIST, "ItemsPerMessage", 250, "Most entries a SendLocalList may hold", mutability=R, min_limit=1),
    integer(LOCAL_LIST, "BytesPerMessage", 65000, "Largest SendLocalList in bytes", mutability=R, min_limit=1),
    integer(LOCAL_LIST, "Storage", 10000, "Most entries in the local list", mutability=R, min_limit=1),
)

AUTH_ENABLED = ref(DEFINITIONS, AUTH, "Enabled")
AUTHORIZE_REMOTE_START = ref(DEFINITIONS, AUTH, "AuthorizeRemoteStart")
LOCAL_AUTHORIZE_OFFLINE = ref(DEFINITIONS, AUTH, "LocalAuthorizeOffline")
LOCAL_PRE_AUTHORIZE = ref(DEFINITIONS, AUTH, "LocalPreAuthorize")
MASTER_PASS_GROUP_ID = ref(DEFINITIONS, AUTH, "MasterPassGroupId")
OFFLINE_TX_FOR_UNKNOWN_ID = ref(DEFINITIONS, AUTH, "OfflineTxForUnknownIdEnabled")
DISABLE_REMOTE_AUTHORIZATION = ref(DEFINITIONS, AUTH, "DisableRemoteAuthorization")
CACHE_ENABLED = ref(DEFINITIONS, CACHE, "Enabled")
CACHE_LIFETIME = ref(DEFINITIONS, CACHE, "LifeTime")
CACHE_STORAGE = ref(DEFINITIONS, CACHE, "Storage")
CACHE_DISABLE_POST_AUTHORIZE = ref(DEFINITIONS, CACHE, "DisablePostAuthorize")
LOCAL_LIST_ENABLED = ref(DEFINITIONS, LOCAL_LIST, "Enabled")
LOCAL_LIST_DISABLE_POST_AUTHORIZE = ref(DEFINITIONS, LOCAL_LIST, "DisablePostAuthorize")
LOCAL_LIST_ENTRIES = ref(DEFINITIONS, LOCAL_LIST, "Entries")
LOCAL_LIST_ITEMS_PER_MESSAGE = ref(DEFINITIONS, LOCAL_LIST, "ItemsPerMessage")
LOCAL_LIST_BYTES_PER_MESSAGE = ref(DEFINITIONS, LOCAL_LIST, "BytesPerMessage")
LOCAL_LIST_STORAGE = ref(DEFINITIONS, LOCAL_LIST, "Storage")
