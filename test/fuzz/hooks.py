# Every URL the fuzzer puts in a request points at the local simulator, so the gateway never calls
# out of this machine (evolutionUrl, callbackUrl, media URLs, legacy mediaUrl, a bot's apiUrl; a
# Telegram instance without one would go to Telegram itself).
import os

import schemathesis
from hypothesis import strategies as st

LOOPBACK = os.environ["FUZZ_LOOPBACK_URL"]

schemathesis.openapi.format("uri", st.sampled_from([LOOPBACK, LOOPBACK + "/media/a.png", LOOPBACK + "/callbacks"]))


def _confine(value):
    if isinstance(value, str) and "://" in value:
        return LOOPBACK
    if isinstance(value, dict):
        return {k: _confine(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_confine(v) for v in value]
    return value


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.body is not None and not isinstance(case.body, (bytes, str)):
        case.body = _confine(case.body)
        telegram = case.body.get("telegram") if isinstance(case.body, dict) else None
        if isinstance(telegram, dict):
            telegram["apiUrl"] = LOOPBACK
